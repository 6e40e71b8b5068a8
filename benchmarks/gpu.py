"""GPU benchmark (issue 12): spikekit against the installed peers on one GPU, in one command.

Two parts, each library variant measured in its own subprocess (a library's backend is chosen
there, a crash or a hang costs only its rows, and peak memory is that process's own):

* **layer**: ``Linear(n, n)`` then one LIF layer (tau 2, threshold 1, hard reset to 0) on an
  input ``[T, B, n]``, loss = sum of the outputs, forward then backward; for n in
  {4096, 8192, 16384}, T = 500, B = 16, in fp32 and in bf16 (``torch.autocast``, as in
  training). Forward and backward are timed separately (CUDA events after a synchronise;
  median over the repeats). The **floor** row is the same ``Linear`` forward and backward
  alone, measured in the same run; every row's ``x_floor`` is its total time over the
  floor's. Peak memory: ``torch.cuda.max_memory_allocated`` over the timed iterations minus
  what was allocated once the input, the ``Linear`` and the neuron existed.
* **train**: training throughput (images/s, forward + backward + SGD step) of spiking
  VGG-11 and SEW-ResNet-18 on random 3x32x32 images, 10 classes, T = 4 (the image repeated at
  every step), B = 128, bf16 autocast: spikekit's models against spikingjelly's.

Peers: spikingjelly (its triton, cupy and torch backends; with spikingjelly >= 2 also its
native ``cuda`` one; 2.0 dropped cupy), norse ``LIFBoxCell`` stepped in Python
(eager and with ``torch.compile``), snntorch ``Leaky`` stepped in Python. A peer that is not
installed, a backend that does not load and a row that fails show their reason in the
``status`` column; the run goes on. Every part runs under a time budget (``--budget``,
default 440 s): a row that does not fit says ``skipped (time)``.

Results: tables on the terminal; ``layer.csv``, ``train.csv``, ``targets.csv`` (the issue's
target ratios), ``meta.json`` (versions, device, settings) and ``logs/`` (each subprocess's
stderr) in ``--out`` (default ``gpu-results``; an existing directory is never overwritten:
a suffix ``-2``, ``-3``, ... is added). Exit status 1 when a floor or spikekit measurement
failed (everything is still written).

    PYTHONPATH=src python benchmarks/gpu.py --out gpu-results
    PYTHONPATH=src python benchmarks/gpu.py --dry-run      # tiny sizes, any device, < 1 min
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikekit import bench

SRC = Path(__file__).resolve().parents[1] / "src"
PREFIX = "@@gpu-bench "  # marks the worker's result lines among whatever libraries print
LAYER_COLS = [
    "n",
    "T",
    "B",
    "dtype",
    "lib",
    "variant",
    "backend",
    "status",
    "fwd_ms",
    "bwd_ms",
    "total_ms",
    "x_floor",
    "peak_mb",
    "mem_x_floor",
    "first_ms",
    "repeats",
    "spike_rate",
    "device",
]
TRAIN_COLS = [
    "model",
    "lib",
    "variant",
    "backend",
    "status",
    "T",
    "B",
    "dtype",
    "step_ms",
    "images_per_s",
    "x_spikingjelly_triton",
    "peak_mb",
    "first_step_ms",
    "steps",
    "device",
]
TARGET_COLS = ["check", "n", "dtype", "model", "value", "against", "ratio", "threshold", "result"]
MODELS = ("spiking_vgg11", "sew_resnet18")
PEERS = ("spikingjelly", "snntorch", "norse")


@dataclass(frozen=True)
class Variant:
    """One measured implementation: a library and, where it has several, which one."""

    lib: str  # "floor", "spikekit" or a peer
    variant: str = ""  # spikingjelly: triton/cupy/cuda/torch; norse: eager/compile

    @property
    def name(self) -> str:
        return f"{self.lib}/{self.variant}" if self.variant else self.lib


# ----------------------------------------------------------------------------- versions
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cupy_version() -> str | None:
    # cupy ships as cupy-cuda12x, cupy-cuda11x, ... (one import name, many distributions)
    dists = importlib.metadata.packages_distributions().get("cupy", [])
    return next((v for v in map(_version, dists) if v), None)


def _sj_major() -> int:
    v = _version("spikingjelly") or "0"
    return int(v.split(".")[0]) if v.split(".")[0].isdigit() else 0


def _sj_variants() -> list[str]:
    """spikingjelly backends to measure. From 2.0 the CUDA implementation is picked by
    ``SJ_LIF_CUDA_IMPLEMENTATION`` (cuda = native, built from source only; triton; torch)
    and cupy is gone; before, ``backend=`` took torch, cupy and (later versions) triton."""
    return ["triton", "cupy", "cuda", "torch"] if _sj_major() >= 2 else ["triton", "cupy", "torch"]


def _sj_native_built() -> bool:
    """Whether spikingjelly's native CUDA LIF ops were compiled (a source build; the wheel has
    none). Looked up on disk: importing them would initialise CUDA in this process."""
    spec = importlib.util.find_spec("spikingjelly")  # a top-level package: not executed
    locs = list(spec.submodule_search_locations or []) if spec else []
    return any(any((Path(p) / "_ops" / "lif").glob("_C*")) for p in locs)


def _unavailable(v: Variant, device: str) -> str:
    """Why ``v`` cannot run here without starting a process ("" if it may)."""
    if v.lib == "floor":
        return ""
    if not bench.available(v.lib):
        return f"not installed ({v.lib})"
    if v.lib == "spikingjelly" and v.variant != "torch":
        if device != "cuda":
            return "skipped (needs CUDA)"
        if v.variant == "cupy":
            if _sj_major() >= 2:
                return f"n/a (spikingjelly {_version('spikingjelly')} has no cupy backend)"
            if importlib.util.find_spec("cupy") is None:
                return "not installed (cupy)"
        if v.variant == "cuda" and not _sj_native_built():
            return "not built (spikingjelly's native CUDA ops need a source build)"
    return ""


# ----------------------------------------------------------------------------- worker: helpers
class _Clock:
    """Marks on the device's timeline: CUDA events on a GPU, ``perf_counter`` on a CPU."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def mark(self) -> Any:
        if self.cuda:
            e = self.torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, a: Any, b: Any) -> float:
        if self.cuda:
            b.synchronize()
            return float(a.elapsed_time(b))
        return (b - a) * 1e3


class _Memory:
    """Peak memory of a row: the most allocated during the timed part above a base."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.cuda = device.type == "cuda"
        self.base = 0

    def set_base(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.base = self.torch.cuda.memory_allocated()

    def reset_peak(self) -> None:
        # after the warm-up: one-off allocations (autotuning, compiling) are not a row's
        # memory, but buffers a library keeps from the warm-up are (they are above the base)
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float:
        if not self.cuda:
            return math.nan  # no allocator statistics for the CPU
        return (self.torch.cuda.max_memory_allocated() - self.base) / 2**20


def _free() -> None:
    """Hand back what the previous row left: its tensors, the allocator's cache, spikekit's buffers."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if "spikekit.kernels" in sys.modules:
        sys.modules["spikekit.kernels"].empty_cache()


def _sj_old_api() -> bool:
    """Whether spikingjelly takes its backend per module (``functional.set_backend``, < 2.0)."""
    from spikingjelly.activation_based import functional

    return hasattr(functional, "set_backend")


def _spikekit_backend(neuron: Any, xs: Any) -> str:
    """Which of spikekit's scans runs ``neuron`` on ``xs`` (and why not a fused one, if not)."""
    import torch

    from spikekit import kernels

    try:
        with torch.no_grad():
            state = neuron.initial_state(xs[0])
            params = neuron._cast(neuron.params(), xs)
            return kernels.explain(type(neuron).step_fn, xs, state, params, neuron.options)
    except Exception as e:  # informative only: the measured times stand
        return f"? ({type(e).__name__}: {e})"[:200]


def _layer_fn(v: Variant, device: Any) -> tuple[Callable[[Any], Any] | None, str]:
    """``f(currents [T, B, n]) -> outputs`` of variant ``v`` on ``device`` and the backend it runs
    (for peers: the one requested). ``None`` for the floor."""
    import torch

    if v.lib == "floor":
        return None, "torch"
    # bench builds the modules eagerly: inside this context their tensors land on the device
    with torch.device(device):
        if v.lib == "spikekit":
            return bench._layer_neuron(v.lib), ""  # the backend is asked for once the input exists
        node = bench.peer_lif(v.lib)
    if v.lib == "norse":
        compiled = v.variant == "compile"
        return bench._layer_neuron(
            v.lib, module=node, compile_step=compiled
        ), "inductor" if compiled else "eager"
    if v.lib == "spikingjelly":
        if _sj_old_api():
            from spikingjelly.activation_based import functional

            functional.set_backend(node, v.variant)
        return bench._layer_neuron(v.lib, module=node), v.variant if device.type == "cuda" else "cpu"
    return bench._layer_neuron(v.lib, module=node), v.variant or "eager"


def _emit(kind: str, row: dict[str, Any]) -> None:
    print(PREFIX + json.dumps({"kind": kind, **row}), flush=True)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"error: {type(e).__name__}: {msg[0] if msg else ''}"[:160]


def _reps_that_fit(est: float, wanted: int, row_end: float, end: float, least: int = 3) -> int:
    """Timed repeats: as many as wanted within the row's share, at least ``least`` if the
    variant's time allows, none if not even one iteration fits."""
    now = time.time()
    est = max(est, 1e-4)
    n = min(wanted, int((row_end - now) / est))
    if n < least:
        n = min(wanted, least, int((end - now) / est))
    return max(n, 0)


# ----------------------------------------------------------------------------- worker: layer
def _layer_row(
    v: Variant, n: int, T: int, B: int, dtype: str, device: Any, task: dict[str, Any], row_end: float
) -> dict[str, Any]:
    import torch

    clock, mem = _Clock(device), _Memory(device)
    torch.manual_seed(0)  # the same weights and input in every variant's process
    with torch.device(device):
        lin = torch.nn.Linear(n, n)
        xs = torch.randn(T, B, n)
    f, backend = _layer_fn(v, device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    mem.set_base()

    def it(rate: list[float] | None = None) -> tuple[float, float]:
        clock.sync()
        m0 = clock.mark()
        with amp:
            y = lin(xs)
            out = y if f is None else f(y)
            del y
            loss = out.sum()
        m1 = clock.mark()
        loss.backward()
        m2 = clock.mark()
        clock.sync()
        if rate is not None and f is not None:
            rate.append(out.detach().float().mean().item())
        lin.weight.grad = lin.bias.grad = None
        return clock.ms(m0, m1), clock.ms(m1, m2)

    rate: list[float] = []
    t0 = time.perf_counter()
    it(rate)  # the first call: kernel compilation / autotuning / torch.compile
    first_ms = (time.perf_counter() - t0) * 1e3
    est = first_ms / 1e3
    for _ in range(max(task["warmup"] - 1, 0)):
        t0 = time.perf_counter()
        it()
        est = time.perf_counter() - t0
    row: dict[str, Any] = {"backend": backend, "first_ms": first_ms, "spike_rate": rate[0] if rate else None}
    if v.lib == "spikekit":
        with torch.no_grad(), amp:
            row["backend"] = _spikekit_backend(f, lin(xs))
    reps = _reps_that_fit(est, task["repeats"], row_end, task["deadline"])
    if reps == 0:
        return {**row, "status": "skipped (time)"}
    mem.reset_peak()
    times = [it() for _ in range(reps)]
    return {
        **row,
        "status": "ok",
        "fwd_ms": statistics.median(a for a, _ in times),
        "bwd_ms": statistics.median(b for _, b in times),
        "total_ms": statistics.median(a + b for a, b in times),
        "peak_mb": mem.peak_mb(),
        "repeats": reps,
    }


def _warm_device(device: Any) -> None:
    """Create what every process allocates once (CUDA context, cuBLAS workspaces in fp32 and
    bf16), so that the first row's peak memory does not include it."""
    import torch

    if device.type == "cpu":
        # a CPU run is a check of the pipeline: one thread, since OpenMP teams on a shared,
        # oversubscribed machine wait milliseconds for each other at every parallel region
        torch.set_num_threads(1)

    with torch.device(device):
        lin = torch.nn.Linear(8, 8)
        x = torch.randn(4, 8)
    for bf16 in (False, True):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            y = lin(x).sum()
        y.backward()
    del lin, x, y
    _free()


def _device_meta(device: Any) -> dict[str, Any]:
    import torch

    meta: dict[str, Any] = {"device": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
        meta["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return meta


def _worker_layer(task: dict[str, Any]) -> None:
    import torch

    device = torch.device(task["device"])
    if task.get("tf32"):
        torch.backends.cuda.matmul.allow_tf32 = True
    v = Variant(task["lib"], task["variant"])
    _warm_device(device)
    _emit("meta", _device_meta(device))
    cells = [(dtype, n) for dtype in task["dtypes"] for n in task["sizes"]]
    for i, (dtype, n) in enumerate(cells):
        ident = {"n": n, "dtype": dtype}
        left = task["deadline"] - time.time()
        if left <= 0:
            _emit("layer", {**ident, "status": "skipped (time)"})
            continue
        row_end = time.time() + left / (len(cells) - i)
        if v.lib == "norse" and v.variant == "compile":
            torch._dynamo.reset()  # each row compiles its own static graph (timed in first_ms)
        try:
            r = _layer_row(v, n, task["T"], task["B"], dtype, device, task, row_end)
        except Exception as e:
            traceback.print_exc()
            r = {"status": _short(e)}
        _free()
        _emit("layer", {**ident, **r})


# ----------------------------------------------------------------------------- worker: train
def _build_model(v: Variant, model: str) -> Any:
    """spikekit's or spikingjelly's ``model`` (LIF tau 2, hard reset to 0, ATan surrogate, no
    detached reset: both libraries' defaults apart from spikingjelly's sigmoid surrogate)."""
    if v.lib == "spikekit":
        from spikekit.models import create_model

        kw = {"connect": "ADD"} if model == "sew_resnet18" else {}
        return create_model(
            model, in_channels=3, num_classes=10, input_size=32, neuron_options={"tau": 2.0}, **kw
        )
    from spikingjelly.activation_based import functional, neuron, surrogate
    from spikingjelly.activation_based.model import sew_resnet, spiking_vgg

    kw = {
        "spiking_neuron": neuron.LIFNode,
        "tau": 2.0,
        "v_threshold": 1.0,
        "v_reset": 0.0,
        "surrogate_function": surrogate.ATan(),
        "detach_reset": False,
    }
    if model == "spiking_vgg11":
        net = spiking_vgg.spiking_vgg11(num_classes=10, **kw)
    else:
        net = sew_resnet.sew_resnet18(num_classes=10, cnf="ADD", **kw)
    functional.set_step_mode(net, "m")
    if _sj_old_api():
        functional.set_backend(net, v.variant, neuron.LIFNode)
    return net


def _train_row(v: Variant, model: str, device: Any, task: dict[str, Any], row_end: float) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    clock, mem = _Clock(device), _Memory(device)
    T, B = task["T"], task["B"]
    torch.manual_seed(0)
    with torch.device(device):
        net = _build_model(v, model)
        img = torch.rand(B, 3, 32, 32)
        labels = torch.randint(0, 10, (B,))
    xs = img.unsqueeze(0).repeat(T, 1, 1, 1, 1)  # direct encoding, [T, B, C, H, W], contiguous
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    reset: Callable[[Any], None] | None = None
    if v.lib == "spikingjelly":
        from spikingjelly.activation_based import functional

        reset = functional.reset_net
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=task["dtype"] == "bf16")
    net.train()
    backend = v.variant if v.lib != "spikingjelly" or device.type == "cuda" else "cpu"
    seen: dict[str, Any] = {}
    hook = None
    if v.lib == "spikekit":
        from spikekit.neurons import Neuron

        first = next(m for m in net.modules() if isinstance(m, Neuron))

        def grab(module: Any, args: tuple[Any, ...]) -> None:  # returns None: the input is kept
            seen.setdefault("x", (module, args[0].detach()))

        hook = first.register_forward_pre_hook(grab)
    mem.set_base()

    def step() -> None:
        with amp:
            out = net(xs)
            loss = F.cross_entropy(out.float().mean(0), labels)  # rate-like decoding: mean over time
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reset is not None:
            reset(net)

    t0 = time.perf_counter()
    step()
    clock.sync()
    first_ms = (time.perf_counter() - t0) * 1e3
    if hook is not None:
        hook.remove()
        backend = _spikekit_backend(*seen.pop("x"))  # what the first neuron ran (bf16 under autocast)
    est = first_ms / 1e3
    for _ in range(max(task["warmup"] - 1, 0)):
        t0 = time.perf_counter()
        step()
        clock.sync()
        est = time.perf_counter() - t0
    row: dict[str, Any] = {"backend": backend, "first_step_ms": first_ms}
    steps = _reps_that_fit(est, task["steps"], row_end, task["deadline"], least=2)
    if steps == 0:
        return {**row, "status": "skipped (time)"}
    mem.reset_peak()
    clock.sync()
    marks = [clock.mark()]
    for _ in range(steps):  # no synchronise between steps: a training loop does not have one
        step()
        marks.append(clock.mark())
    clock.sync()
    step_ms = statistics.median(clock.ms(a, b) for a, b in itertools.pairwise(marks))
    return {
        **row,
        "status": "ok",
        "step_ms": step_ms,
        "images_per_s": B / (step_ms / 1e3),
        "peak_mb": mem.peak_mb(),
        "steps": steps,
    }


def _worker_train(task: dict[str, Any]) -> None:
    import torch

    device = torch.device(task["device"])
    if task.get("tf32"):
        torch.backends.cuda.matmul.allow_tf32 = True
    v = Variant(task["lib"], task["variant"])
    _warm_device(device)
    _emit("meta", _device_meta(device))
    models = task["models"]
    for i, model in enumerate(models):
        left = task["deadline"] - time.time()
        if left <= 0:
            _emit("train", {"model": model, "status": "skipped (time)"})
            continue
        try:
            r = _train_row(v, model, device, task, time.time() + left / (len(models) - i))
        except Exception as e:
            traceback.print_exc()
            r = {"status": _short(e)}
        _free()
        _emit("train", {"model": model, **r})


# ----------------------------------------------------------------------------- orchestration
def _fresh_dir(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``, ... if it exists: results are never overwritten."""
    cand, k = out, 1
    while cand.exists():
        k += 1
        cand = out.with_name(f"{out.name}-{k}")
    if cand != out:
        print(f"{out} exists; writing to {cand}")
    cand.mkdir(parents=True)
    (cand / "logs").mkdir()
    return cand


def _spawn(
    task: dict[str, Any], env_extra: dict[str, str], kill_at: float, log: Path, on_row: Callable[[dict], None]
) -> str:
    """Run one worker; ``on_row`` gets each result line as it comes. Returns "" after a clean
    exit, else why the rows it did not send are missing."""
    env = {**os.environ, **env_extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    with open(log, "w") as err:
        # a session of its own: on a timeout the worker goes with its children (torch.compile's
        # compile workers), and nothing else
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, start_new_session=True
        )
        assert proc.stdout is not None

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith(PREFIX):
                    try:
                        on_row(json.loads(line[len(PREFIX) :]))
                    except Exception:  # keep reading: a full pipe would block the worker
                        traceback.print_exc()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(5)

        try:
            rc = proc.wait(timeout=max(kill_at - time.time(), 1.0))
        except subprocess.TimeoutExpired:
            kill()
            return f"skipped (time; killed, see logs/{log.name})"
        except BaseException:  # Ctrl-C: its own session does not get the terminal's SIGINT
            kill()
            raise
        reader.join(5)
    if log.stat().st_size == 0:
        log.unlink()  # keep only the logs that say something
    if rc == 0:
        return ""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {rc}"
    return f"error: {last} (see logs/{log.name})"[:200]


def _fmt(x: Any, spec: str, unit: str = "") -> str:
    """``x`` formatted by ``spec``, then ``unit``; a "-" as wide when it is missing."""
    if x is None or x == "" or (isinstance(x, float) and math.isnan(x)):
        width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
        return "-".rjust(width + len(unit))
    return format(x, spec) + unit


def _name(r: dict[str, Any]) -> str:
    return Variant(r["lib"], r["variant"]).name


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The first row whose fields equal ``match``."""
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _layer_line(r: dict[str, Any]) -> str:
    head = f"{r['n']:>6} {r['dtype']:<5} {_name(r):<22}"
    if r["status"] != "ok":
        extra = f"  first {r['first_ms']:.0f} ms" if r.get("first_ms") else ""
        return f"{head} {r['status']}{extra}"
    rate = _fmt(r["spike_rate"] * 100 if r.get("spike_rate") is not None else None, ">7.2f")
    return (
        f"{head} {r['fwd_ms']:>9.2f} {r['bwd_ms']:>9.2f} {r['total_ms']:>9.2f} {_fmt(r.get('x_floor'), '>8.3f', 'x')}"
        f" {_fmt(r.get('peak_mb'), '>9.0f')} {_fmt(r.get('mem_x_floor'), '>7.2f', 'x')} {rate}  {r['backend'][:60]}"
    )


LAYER_HEADER = (
    f"{'n':>6} {'dtype':<5} {'library':<22} {'fwd ms':>9} {'bwd ms':>9} {'total ms':>9} {'x floor':>9}"
    f" {'peak MB':>9} {'x floor':>8} {'rate %':>7}  backend"
)
TRAIN_HEADER = f"{'model':<14} {'library':<22} {'ms/step':>9} {'images/s':>10} {'x sj triton':>12} {'peak MB':>9}  backend"


def _train_line(r: dict[str, Any]) -> str:
    head = f"{r['model']:<14} {_name(r):<22}"
    if r["status"] != "ok":
        return f"{head} {r['status']}"
    return (
        f"{head} {r['step_ms']:>9.1f} {r['images_per_s']:>10.1f} {_fmt(r.get('x_spikingjelly_triton'), '>11.3f', 'x')}"
        f" {_fmt(r.get('peak_mb'), '>9.0f')}  {r['backend'][:60]}"
    )


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _write_csv(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _num(r.get(c)) for c in cols})


class _Run:
    """One benchmark run: the plan, the time budget, the rows, the output files."""

    def __init__(self, cfg: dict[str, Any], out: Path, device: str) -> None:
        self.cfg, self.out, self.device = cfg, out, device
        self.start = time.time()
        self.end = self.start + cfg["budget"]
        self.layer: list[dict[str, Any]] = []
        self.train: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.lock = threading.Lock()

    # -- planning
    def variants(self, kind: str) -> list[Variant]:
        libs = self.cfg["libs"]
        if kind == "train":
            # spikingjelly's triton first: spikekit's line can then show the ratio to it
            sj = [Variant("spikingjelly", b) for b in _sj_variants()] if "spikingjelly" in libs else []
            return sj[:1] + ([Variant("spikekit")] if "spikekit" in libs else []) + sj[1:]
        vs = [Variant("floor")] + ([Variant("spikekit")] if "spikekit" in libs else [])
        # the comparisons that the targets need first, then the rest (later ones get what is
        # left of the budget)
        order = [("spikingjelly", "triton"), ("snntorch", ""), ("norse", "eager"), ("norse", "compile")]
        order += [("spikingjelly", b) for b in _sj_variants() if b != "triton"]
        return vs + [Variant(lib, b) for lib, b in order if lib in libs]

    def _spawn_all(self, kind: str, phase_end: float) -> None:
        vs = self.variants(kind)
        runnable = [v for v in vs if not _unavailable(v, self.device)]
        for v in vs:
            why = _unavailable(v, self.device)
            keys = self._keys(kind)
            if why:
                for k in keys:
                    self._add(kind, {**k, "lib": v.lib, "variant": v.variant, "status": why})
                continue
            left = phase_end - time.time()
            share = left / max(len(runnable), 1)
            runnable.remove(v)
            deadline = time.time() + share
            task = {
                "kind": kind,
                "lib": v.lib,
                "variant": v.variant,
                "device": self.device,
                "deadline": deadline,
                "tf32": self.cfg["tf32"],
                **self._task(kind),
            }
            env = {"SJ_LIF_CUDA_IMPLEMENTATION": v.variant} if v.lib == "spikingjelly" else {}
            got: list[dict[str, Any]] = []

            def on_row(r: dict[str, Any], v: Variant = v, got: list[dict[str, Any]] = got) -> None:
                if r.pop("kind") == "meta":
                    with self.lock:
                        self.meta.setdefault("device", r)
                    return
                got.append(r)
                self._add(kind, {**r, "lib": v.lib, "variant": v.variant})

            if left <= 1:
                why = "skipped (time)"
            else:
                # a grace period past the worker's own deadline, for a row that overran
                log = self.out / "logs" / f"{kind}-{v.name.replace('/', '-')}.log"
                why = _spawn(task, env, min(deadline + 20, self.end + 15), log, on_row)
            done = {tuple(r[k] for k in keys[0]) for r in got} if keys else set()
            for k in keys:
                if tuple(k.values()) not in done:
                    self._add(
                        kind, {**k, "lib": v.lib, "variant": v.variant, "status": why or "error: no result"}
                    )
            self.write()

    def _keys(self, kind: str) -> list[dict[str, Any]]:
        if kind == "train":
            return [{"model": m} for m in self.cfg["models"]]
        return [{"n": n, "dtype": d} for d in self.cfg["dtypes"] for n in self.cfg["sizes"]]

    def _task(self, kind: str) -> dict[str, Any]:
        c = self.cfg
        if kind == "train":
            keys = {
                "models": "models",
                "T": "train_T",
                "B": "train_B",
                "steps": "train_steps",
                "warmup": "train_warmup",
                "dtype": "train_dtype",
            }
        else:
            keys = {k: k for k in ("sizes", "dtypes", "T", "B", "repeats", "warmup")}
        return {k: c[v] for k, v in keys.items()}

    # -- rows
    def _add(self, kind: str, r: dict[str, Any]) -> None:
        with self.lock:
            r.setdefault("device", self.device)
            if kind == "layer":
                r.update(T=self.cfg["T"], B=self.cfg["B"])
                self.layer.append(r)
                self._layer_ratios(r)
                print(_layer_line(r), flush=True)
            else:
                r.update(T=self.cfg["train_T"], B=self.cfg["train_B"], dtype=self.cfg["train_dtype"])
                self.train.append(r)
                self._train_ratios(r)
                print(_train_line(r), flush=True)

    def _layer_ratios(self, r: dict[str, Any]) -> None:
        floor = self._floor(r["n"], r["dtype"])
        if r["status"] != "ok" or floor is None:
            return
        r["x_floor"] = r["total_ms"] / floor["total_ms"]
        fp, p = floor.get("peak_mb"), r.get("peak_mb")
        if fp and p is not None and not math.isnan(fp) and not math.isnan(p):
            r["mem_x_floor"] = p / fp

    def _train_ratios(self, r: dict[str, Any]) -> None:
        ref = self._train_ref(r["model"])
        if r["status"] == "ok" and ref is not None:
            r["x_spikingjelly_triton"] = r["images_per_s"] / ref["images_per_s"]

    def _floor(self, n: int, dtype: str) -> dict[str, Any] | None:
        return _find(self.layer, lib="floor", n=n, dtype=dtype, status="ok")

    def _train_ref(self, model: str) -> dict[str, Any] | None:
        return _find(self.train, model=model, lib="spikingjelly", variant="triton", status="ok")

    # -- phases
    def run(self) -> None:
        c = self.cfg
        if not c["skip_layer"]:
            phase_end = self.end if c["skip_train"] else self.start + c["budget"] * c["layer_share"]
            print(
                f"\nlayer: Linear(n, n) + LIF (tau 2, threshold 1, hard reset 0), input [T={c['T']}, B={c['B']}, n],"
                f" loss = sum, forward + backward; median of up to {c['repeats']}"
                f" ({'CUDA events' if self.device == 'cuda' else 'perf_counter'});"
                f" peak = max allocated above input + weights"
            )
            print(LAYER_HEADER, flush=True)
            self._spawn_all("layer", phase_end)
        if not c["skip_train"]:
            print(
                f"\ntrain: random 3x32x32 images, 10 classes, T={c['train_T']}, B={c['train_B']}, {c['train_dtype']},"
                f" SGD; median of up to {c['train_steps']} steps"
            )
            print(TRAIN_HEADER, flush=True)
            self._spawn_all("train", self.end)

    def summary(self) -> None:
        """Print the rows again, sorted for reading (``write`` sorts them)."""
        if self.layer:
            print("\nlayer (sorted):\n" + LAYER_HEADER)
            print("\n".join(map(_layer_line, self.layer)))
        if self.train:
            print("\ntrain (sorted):\n" + TRAIN_HEADER)
            print("\n".join(map(_train_line, self.train)))

    def write(self) -> None:
        """Write the csv files: rows sorted by dtype, n, variant (layer) and model, variant (train)."""
        layer = [v.name for v in self.variants("layer")]
        train = [v.name for v in self.variants("train")]
        with self.lock:
            self.layer.sort(
                key=lambda r: (self.cfg["dtypes"].index(r["dtype"]), r["n"], layer.index(_name(r)))
            )
            self.train.sort(key=lambda r: (self.cfg["models"].index(r["model"]), train.index(_name(r))))
            # a reference row may have come after the rows that divide by it
            for r in self.layer:
                self._layer_ratios(r)
            for r in self.train:
                self._train_ratios(r)
        _write_csv(self.out / "layer.csv", self.layer, LAYER_COLS)
        _write_csv(self.out / "train.csv", self.train, TRAIN_COLS)

    # -- targets
    def targets(self) -> list[dict[str, Any]]:
        """The issue's checks, from the rows: a ratio, its threshold and PASS/FAIL (n/a when a
        row it needs did not run)."""
        ok = [r for r in self.layer if r["status"] == "ok"]
        out: list[dict[str, Any]] = []
        passes = {"<=": lambda x, t: x <= t, "<": lambda x, t: x < t, ">=": lambda x, t: x >= t}

        def add(
            check: str, mine: dict | None, ref: dict | None, key: str, op: str, thr: float, **at: Any
        ) -> None:
            value, base = (mine or {}).get(key), (ref or {}).get(key)
            ratio = None
            if value is not None and base and not math.isnan(value) and not math.isnan(base):
                ratio = value / base
            result = "n/a" if ratio is None else "PASS" if passes[op](ratio, thr) else "FAIL"
            against = _name(ref) if ref else "(did not run)"
            row = {
                "value": value,
                "against": against,
                "ratio": ratio,
                "threshold": f"{op} {thr}",
                "result": result,
            }
            out.append({"check": check, **at, **row})

        sizes, dtypes = self.cfg["sizes"], self.cfg["dtypes"]
        if sizes and "fp32" in dtypes and not self.cfg["skip_layer"]:
            n = 16384 if 16384 in sizes else max(sizes)  # the issue's n, or the largest run
            mine = _find(ok, lib="spikekit", n=n, dtype="fp32")
            add("time / floor", mine, self._floor(n, "fp32"), "total_ms", "<=", 1.10, n=n, dtype="fp32")
        for d in dtypes if not self.cfg["skip_layer"] else []:
            for n in sizes:
                mine = _find(ok, lib="spikekit", n=n, dtype=d)
                peers = [r for r in ok if r["lib"] in PEERS and r["n"] == n and r["dtype"] == d]
                best = min(peers, key=lambda r: r["total_ms"], default=None)
                add("time / best peer", mine, best, "total_ms", "<", 1.0, n=n, dtype=d)
                # the least memory among spikingjelly's backends (none on a CPU: no peak there)
                sj = [r for r in peers if r["lib"] == "spikingjelly" and not math.isnan(r["peak_mb"])]
                low = min(sj, key=lambda r: r["peak_mb"], default=None)
                add("peak memory / spikingjelly", mine, low, "peak_mb", "<=", 1.0, n=n, dtype=d)
        for m in self.cfg["models"] if not self.cfg["skip_train"] else []:
            mine = _find(self.train, model=m, lib="spikekit", status="ok")
            add(
                "images/s / spikingjelly triton", mine, self._train_ref(m), "images_per_s", ">=", 1.0, model=m
            )
        return out


def _print_targets(rows: list[dict[str, Any]]) -> None:
    print("\ntargets (issue 12):")
    for t in rows:
        where = f"model={t['model']}" if t.get("model") else f"n={t['n']} {t['dtype']}"
        ratio = f"{t['ratio']:.3f}" if t["ratio"] is not None else "-"
        print(
            f"  {t['check']:<32} {where:<22} {ratio:>7}  ({t['threshold']}; vs {t['against']})  {t['result']}"
        )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", default="gpu-results", help="results directory (default gpu-results; never overwritten)"
    )
    p.add_argument("--dry-run", action="store_true", help="tiny sizes (n=64, T=8, B=2; models B=2, 1 step)")
    p.add_argument("--sizes", type=int, nargs="+", help="layer widths n (default 4096 8192 16384)")
    p.add_argument("-T", type=int, help="time steps of the layer benchmark (default 500)")
    p.add_argument("-B", type=int, help="batch of the layer benchmark (default 16)")
    p.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], help="default fp32 bf16")
    p.add_argument("--repeats", type=int, help="timed iterations per layer row (default 10)")
    p.add_argument(
        "--libs",
        nargs="+",
        choices=bench.LIBS,
        default=list(bench.LIBS),
        help="libraries (the floor always runs)",
    )
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--train-steps", type=int, help="timed training steps per model (default 10)")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-layer", action="store_true")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default 440; dry run 600)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 matmuls (default: torch's, off)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _config(a: argparse.Namespace) -> dict[str, Any]:
    def pick(value: Any, full: Any, dry: Any) -> Any:
        return value if value is not None else (dry if a.dry_run else full)

    return {
        "sizes": pick(a.sizes, [4096, 8192, 16384], [64]),
        "T": pick(a.T, 500, 8),
        "B": pick(a.B, 16, 2),
        "dtypes": pick(a.dtypes, ["fp32", "bf16"], ["fp32", "bf16"]),
        "repeats": pick(a.repeats, 10, 2),
        "warmup": 2,
        "libs": list(dict.fromkeys(a.libs)),
        "models": list(dict.fromkeys(a.models)),
        "train_T": 4,
        "train_B": 2 if a.dry_run else 128,
        "train_steps": pick(a.train_steps, 10, 1),
        "train_warmup": 1 if a.dry_run else 3,
        "train_dtype": "bf16",
        "skip_train": a.skip_train,
        "skip_layer": a.skip_layer,
        "budget": pick(a.budget, 440.0, 600.0),
        # the layer part's share of the budget; the train part gets the rest, and what the
        # layer part leaves
        "layer_share": 0.6,
        "tf32": a.tf32,
        "dry_run": a.dry_run,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one subprocess's share of it); an exit status."""
    a = _parse(argv)
    if a.worker:
        task = json.loads(a.worker)
        (_worker_train if task["kind"] == "train" else _worker_layer)(task)
        return 0
    cfg = _config(a)
    for k in ("T", "B", "repeats", "train_steps", "budget"):
        if cfg[k] <= 0:
            print(f"gpu.py: {k} must be > 0, got {cfg[k]}", file=sys.stderr)
            return 2
    if any(n <= 0 for n in cfg["sizes"]):
        print(f"gpu.py: sizes must be > 0, got {cfg['sizes']}", file=sys.stderr)
        return 2
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu.py: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    device = "cuda" if a.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if a.dry_run and device == "cpu":
        # bf16 convolutions on a CPU without bf16 units are 10-50x slower than fp32: a dry run
        # there trains in fp32 (the layer part still runs both dtypes; it is small)
        cfg["train_dtype"] = "fp32"
    out = _fresh_dir(Path(a.out))
    versions = {
        d: _version(d) for d in ("torch", "triton", "numba", "spikekit", "spikingjelly", "norse", "snntorch")
    }
    versions["cupy"] = _cupy_version()
    print(
        f"gpu benchmark on {device}{' (dry run)' if a.dry_run else ''}, budget {cfg['budget']:.0f} s -> {out}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    run = _Run(cfg, out, device)
    try:
        run.run()
    finally:
        run.write()  # also after an interrupt: the rows so far
        targets = run.targets()
        _write_csv(out / "targets.csv", targets, TARGET_COLS)
        meta = {
            "settings": cfg,
            "versions": versions,
            **run.meta.get("device", {"device": device}),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.start)),
            "elapsed_s": round(time.time() - run.start, 1),
            "timing": "median over the timed iterations; CUDA events after a synchronise on a GPU, "
            "time.perf_counter on a CPU; forward = Linear + neuron + sum, backward = loss.backward()",
            "peak_mb": "torch.cuda.max_memory_allocated() over the timed iterations minus "
            "torch.cuda.memory_allocated() once the input, the Linear and the neuron existed "
            "(train: the model, its optimiser and the batch); empty on a CPU",
            "bf16": "torch.autocast(dtype=torch.bfloat16) around the forward; parameters and input fp32",
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    run.summary()
    _print_targets(targets)
    print(f"\nwrote {out}/layer.csv, train.csv, targets.csv, meta.json in {time.time() - run.start:.0f} s")
    failed = [
        r
        for r in run.layer + run.train
        if r["lib"] in ("floor", "spikekit") and str(r["status"]).startswith("error")
    ]
    if failed:
        print(f"{len(failed)} floor/spikekit measurement(s) failed: see the status column and logs/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
