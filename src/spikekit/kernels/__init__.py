"""Running a neuron's step over time: the reference loop, the kernel generator, the fused op.

Layering (imports point down only)::

    kernels/__init__    scan(): picks the reference loop or the fused op for a call
    kernels/ops         torch.library custom ops spikekit::fused_scan(_backward), spec registry
    kernels/numba_cpu   the CPU printer: traced step -> numba source + threads
    kernels/_numba_rt   what generated numba modules import: packed arguments, chunk claims, exp
    kernels/triton_gpu  the GPU printer: traced step -> Triton source
    kernels/_triton_rt  what generated Triton modules import: ops Triton lacks, from core ops
    kernels/codegen     what the printers share: program -> statements, sources cached on disk
    kernels/buffers     reused memory for the CPU kernels' large [T, ...] outputs
    kernels/graph       the generator's front end: step -> traced scalar programs (make_fx)
    kernels/reference   the reference scan (a Python loop over the step, autograd for gradients)

``kernels`` never imports the neuron modules: it receives a step function with its options,
state and parameters, and derives everything from the function itself. A fused kernel is
generated from, and keyed by, the *identity* of that function and its options (a subclass
that overrides its step gets a kernel of its own, never its parent's). Every backend is
parity-tested against the reference (outputs, final state and every gradient) by
``tests/test_kernels.py``, driven by the neuron registry.

The fused kernels' large outputs come from :mod:`spikekit.kernels.buffers`, which keeps them
for reuse once nothing references them (1-32 MB each, up to ``$SPIKEKIT_BUFFER_CACHE_MB`` in
all, default 256); :func:`empty_cache` hands the free ones back to the OS.

Backends are tried by priority; one that declines a call (device, dtype, a step the
generator cannot trace) leaves it to the reference, so a backend can never make a call fail
that the reference would run (a step that cannot be traced says so in one warning). Built in:
``numba`` (CPU; float32, float64) and ``triton`` (CUDA; float32, float64, bfloat16, float16;
the state is kept in float32 for 16-bit inputs). Force one for testing or debugging::

    with spikekit.kernels.use("reference"):
        net(xs)

``use("triton")`` also runs CPU tensors, in Triton's interpreter, when ``TRITON_INTERPRET=1``
was set before triton was imported: the GPU kernels, checked on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikekit.kernels.reference import StepFn, scan_trace
from spikekit.kernels.reference import scan as reference_scan

__all__ = ["Backend", "register", "backends", "use", "scan", "scan_trace", "select", "explain", "empty_cache"]


@dataclass
class Backend:
    """A device implementation of the fused scan op.

    Args:
        name: unique backend name, e.g. ``"numba"``.
        supports: ``supports(xs) -> bool``: the device/dtype this backend runs.
        priority: higher wins among backends that accept a call.
        dtypes: the input dtypes it runs.
        load: optional zero-argument hook run once before first use (e.g. import numba);
            if it raises, the backend is disabled with a single warning.
    """

    name: str
    supports: Callable[[Tensor], bool]
    priority: int = 0
    load: Callable[[], None] | None = None
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    _status: str = field(default="unloaded", repr=False)  # unloaded | ready | failed

    def ready(self) -> bool:
        if self._status == "unloaded":
            try:
                if self.load is not None:
                    self.load()
                self._status = "ready"
            except Exception as e:  # any load failure means "use the reference"
                self._status = "failed"
                warnings.warn(
                    f"spikekit: backend {self.name!r} could not load ({type(e).__name__}: {e}); "
                    f"falling back to the reference scan",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return self._status == "ready"


_BACKENDS: dict[str, Backend] = {}
_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("spikekit_backend", default=None)


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend."""
    if backend.name == "reference":
        raise ValueError("'reference' is the built-in fallback and cannot be replaced")
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> list[str]:
    """Names of all registered backends, plus ``"reference"``."""
    return ["reference", *sorted(_BACKENDS)]


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Force a backend inside the ``with`` block (``"reference"`` disables fused kernels).

    A forced backend that does not support a call raises instead of silently falling back,
    so tests can be sure which code ran.
    """
    if name != "reference" and name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; registered: {', '.join(backends())}")
    token = _FORCED.set(name)
    try:
        yield
    finally:
        _FORCED.reset(token)


def _spec_key(step: StepFn, options: Any, state_type: type, params_type: type) -> str:
    """Key of the fused op for this step, or ``""`` if the generator cannot trace it.

    Run eagerly even inside ``torch.compile`` (the result is a constant of the graph).
    """
    from spikekit.kernels.ops import spec_for

    s = spec_for(step, options, state_type, params_type)
    return s.key if s.fusable() else ""


# ``torch.compiler.assume_constant_result(_spec_key)`` sets exactly this attribute, but calling
# it imports Dynamo (~2 s) at ``import spikekit``; the fullgraph tests in test_pt2.py fail if
# Dynamo stops honouring it.
_spec_key._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _why_not(step: StepFn, options: Any, state_type: type, params_type: type) -> str:
    from spikekit.kernels.graph import NotFusable
    from spikekit.kernels.ops import spec_for

    try:
        spec_for(step, options, state_type, params_type).graphs()
    except NotFusable as e:
        return str(e)
    return ""


def _call_ok(xs: Tensor, state: Any, params: Any) -> str:
    """Why the tensors of a call cannot go to a fused kernel (``""``: they can)."""
    if not isinstance(xs, Tensor) or xs.ndim < 2 or xs.numel() == 0:
        return "the input is not a non-empty [T, B, ...] tensor"
    feat = xs.shape[1:]
    if not isinstance(state, tuple) or not isinstance(params, tuple):
        return "state and params must be NamedTuples"
    for t in (*state, *params):
        if not isinstance(t, Tensor) or t.dtype != xs.dtype or t.device != xs.device:
            return "a state or parameter tensor differs from the input in type, dtype or device"
    if any(s.shape != feat for s in state):
        return "a state tensor does not have the shape of one time slice"
    for p in params:
        # what torch.broadcast_shapes(p.shape, feat) == feat says, without its ~45 us per call
        shape = p.shape
        tail = feat[len(feat) - len(shape) :] if len(shape) <= len(feat) else None
        if tail is None or any(d != 1 and d != f for d, f in zip(shape, tail, strict=True)):
            return f"a parameter of shape {tuple(p.shape)} does not broadcast to {tuple(feat)}"
    return ""


def select(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> str:
    """Name of the backend :func:`scan` would use for this call."""
    return _checked(step, xs, state, params, options)[0]


def _checked(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[str, str, str]:
    """:func:`_select`, raising when a forced backend cannot take the call."""
    res = _select(step, xs, state, params, options)
    if res[1] and _FORCED.get() not in (None, "reference"):
        raise RuntimeError(f"backend {_FORCED.get()!r} was forced but does not support this call: {res[1]}")
    return res


def explain(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> str:
    """Which backend runs this call and, when it is the reference, why no fused kernel does."""
    name, why, _ = _select(step, xs, state, params, options)
    return name if not why else f"{name} ({why})"


def _is_dynamo_compiling() -> bool:
    return getattr(torch.compiler, "is_dynamo_compiling", lambda: False)()


def _onnx_exporting() -> bool:
    """``torch.onnx.is_in_onnx_export()``, also when Dynamo traces the call.

    Dynamo folds ``is_in_onnx_export()`` to ``False``, and the ONNX exporter retries a failed
    ``torch.export(strict=False)`` with ``strict=True`` (Dynamo), so under Dynamo read the
    (dynamo-based) exporter's flag directly; the TorchScript exporter never runs under Dynamo.
    """
    if _is_dynamo_compiling():
        try:
            from torch.onnx._internal.exporter import _flags
        except ImportError:  # a torch without that exporter
            return False
        return bool(_flags._is_onnx_exporting)
    return torch.onnx.is_in_onnx_export()


def _check_onnx_T(xs: Tensor) -> None:
    """Refuse an ONNX export whose T is dynamic: an unrolled loop would fix it to the traced T.

    ``torch.onnx.export`` first captures with ``torch.export(strict=False)``, where a dynamic T
    is a ``SymInt``. If that fails it retries with Dynamo (``strict=True``) and, on a
    specialisation error, again with the dimension made static, silently. Dynamo shows a
    symbolic size as a plain ``int``, so there a dynamic T cannot be told apart: refuse that
    capture too (the exporter then raises the first capture's error).
    """
    msg = (
        "ONNX has no spikekit::fused_scan, so exporting a spiking neuron unrolls its time loop for "
        "the traced number of time steps T."
    )
    fix = (
        " Export with a static T (no dynamic_shapes/dynamic_axes on dim 0 of the input), or keep a "
        "dynamic T with torch.export.export, whose program keeps the fused op."
    )
    if _is_dynamo_compiling():
        raise RuntimeError(
            f"spikekit: {msg} Only torch.onnx.export's default capture (torch.export strict=False) "
            f"can check that T is static; see the error of that capture.{fix}"
        )
    if isinstance(xs, Tensor) and xs.ndim and isinstance(xs.shape[0], torch.SymInt):
        raise RuntimeError(
            f"spikekit: cannot export to ONNX with a dynamic number of time steps T: {msg}{fix}"
        )


_ONNX_WHY = "exporting to ONNX, which has no spikekit::fused_scan: the time loop is unrolled for the traced T"


def _select(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[str, str, str]:
    """``(backend, why not a fused one, the backend that would run it if the step could be
    fused)``; the last is empty unless only the step itself stands in the way."""
    # ONNX has no spikekit::fused_scan: while exporting (either exporter), run the reference
    # scan, which unrolls the time loop for the traced T into plain ONNX ops.
    if _onnx_exporting():
        _check_onnx_T(xs)
        return "reference", _ONNX_WHY, ""
    forced = _FORCED.get()
    if forced == "reference":
        return "reference", "", ""
    cands = (
        [_BACKENDS[forced]] if forced is not None else sorted(_BACKENDS.values(), key=lambda b: -b.priority)
    )
    why = _call_ok(xs, state, params)
    if why:
        return "reference", why, ""
    on_device = [b for b in cands if b.supports(xs)]
    for b in on_device:
        if xs.dtype in b.dtypes and b.ready():
            if not _spec_key(step, options, type(state), type(params)):
                return "reference", _why_not(step, options, type(state), type(params)), b.name
            return b.name, "", ""
    if on_device:
        names = ", ".join(f"{b.name} runs {'/'.join(str(d)[6:] for d in b.dtypes)}" for b in on_device)
        return "reference", f"dtype {xs.dtype} ({names})", ""
    if forced == "triton" and xs.device.type == "cpu":
        return "reference", "triton runs CPU tensors only in its interpreter: set TRITON_INTERPRET=1", ""
    where = f"no backend for {xs.device.type} tensors" + (f" ({forced} forced)" if forced else "")
    return "reference", where, ""


_WARNED: set[Any] = set()


def _warn_once(step: StepFn, options: Any, backend: str, why: str) -> None:
    """A step that a backend could run but the generator cannot fuse runs on the reference
    scan: say so once per (step, options), never silently."""
    key = (step, options)
    if key in _WARNED:
        return
    _WARNED.add(key)
    name = getattr(step, "__qualname__", repr(step))
    warnings.warn(
        f"spikekit: the step {name} cannot be fused into a {backend} kernel ({why}); it runs on the "
        f"reference scan, a Python loop over time (much slower). Shown once per step and options.",
        RuntimeWarning,
        stacklevel=4,
    )


def scan(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[Tensor, Any]:
    """Run ``step`` over ``xs`` ``[T, B, *features]`` with the best backend (see module docstring).

    Args:
        step: the neuron's step function; the fused kernel is generated from it.
        xs: input sequence, time-first.
        state: initial state NamedTuple (``[B, *features]`` per field).
        params: the step's parameter NamedTuple (each broadcastable to ``[B, *features]``).
        options: the step's (hashable) options.

    Returns:
        ``(outs [T, B, *features], final_state)``, exactly as :func:`reference_scan`.
    """
    name, why, could = _checked(step, xs, state, params, options)
    if name == "reference":
        if could:
            _warn_once(step, options, could, why)
        return reference_scan(step, xs, state, params, options)
    from spikekit.kernels.ops import run_fused

    return run_fused(_spec_key(step, options, type(state), type(params)), xs, state, params)


def empty_cache() -> int:
    """Release the fused kernels' cached output buffers that nothing references any more.

    Returns:
        The number of bytes handed back to the operating system.

    Example:
        >>> import spikekit as spk
        >>> spk.kernels.empty_cache() >= 0
        True
    """
    from spikekit.kernels import buffers

    return buffers.empty_cache()


# ----------------------------------------------------------------------------- built-in backends
def _numba_load() -> None:
    if importlib.util.find_spec("numba") is None:
        raise ImportError("numba is not installed (pip install 'spikekit[fast]')")
    from spikekit.kernels import ops  # noqa: F401  (registers the custom ops)


register(
    Backend(
        name="numba",
        supports=lambda xs: xs.device.type == "cpu",
        priority=10,
        load=_numba_load,
    )
)


def _triton_load() -> None:
    if importlib.util.find_spec("triton") is None:
        raise ImportError("triton is not installed (it comes with PyTorch's CUDA wheels on Linux)")
    from spikekit.kernels import ops  # noqa: F401  (registers the custom ops)


_TRITON_GPUS: dict[int, bool] = {}


def _triton_supports(xs: Tensor) -> bool:
    if xs.device.type == "cuda":
        index = xs.device.index if xs.device.index is not None else torch.cuda.current_device()
        ok = _TRITON_GPUS.get(index)
        if ok is None:  # Triton compiles for Volta (7.0) and newer
            ok = _TRITON_GPUS[index] = torch.version.hip is not None or torch.cuda.get_device_capability(
                index
            ) >= (7, 0)
        return ok
    # CPU tensors only when asked for by name, in Triton's interpreter (parity checks without a GPU)
    if xs.device.type == "cpu" and _FORCED.get() == "triton":
        from spikekit.kernels.triton_gpu import interpreting

        return interpreting()
    return False


register(
    Backend(
        name="triton",
        supports=_triton_supports,
        priority=10,
        load=_triton_load,
        dtypes=(torch.float32, torch.float64, torch.bfloat16, torch.float16),
    )
)
