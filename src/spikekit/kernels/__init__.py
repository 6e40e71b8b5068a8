"""Backends for running a neuron over time, chosen by a small registry.

The reference backend is :func:`spikekit.functional.scan`: a Python loop over the neuron's
step function, differentiated by autograd. Faster backends (fused CPU kernels, later GPU
kernels) register here for a neuron *family* (``"lif"``, ``"if"``, ...) with a predicate that
says which inputs/options they handle. :func:`scan` picks the highest-priority backend that
accepts the call and falls back to the reference otherwise, so a backend can never make a
call fail that the reference would run. Every registered backend must have a parity test
against the reference (outputs and gradients).

Backends load lazily: registering costs nothing at ``import spikekit``; a backend's
``load`` hook runs on first use, and if it raises, the backend is disabled with one warning.

Force a backend for testing or debugging::

    with spikekit.kernels.use("reference"):
        net(xs)
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from spikekit.functional.scan import StepFn, scan_trace
from spikekit.functional.scan import scan as reference_scan

__all__ = ["Backend", "register", "backends", "use", "scan", "scan_trace", "select"]


@dataclass
class Backend:
    """A registered way of running a neuron family over time.

    Args:
        name: unique backend name, e.g. ``"numba"``.
        families: neuron families it implements (``Neuron.family``).
        supports: ``supports(family, xs, state, params, options) -> bool``.
        run: ``run(family, xs, state, params, options) -> (outs, final_state)``.
        priority: higher wins among backends that accept a call.
        load: optional zero-argument hook run once before first use (e.g. import numba);
            if it raises, the backend is disabled with a single warning.
    """

    name: str
    families: frozenset[str]
    supports: Callable[..., bool]
    run: Callable[..., tuple[Tensor, Any]]
    priority: int = 0
    load: Callable[[], None] | None = None
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


def select(family: str, xs: Tensor, state: Any, params: Any, options: Any) -> str:
    """Name of the backend :func:`scan` would use for this call."""
    forced = _FORCED.get()
    if forced is not None:
        if forced == "reference":
            return "reference"
        b = _BACKENDS[forced]
        if family in b.families and b.ready() and b.supports(family, xs, state, params, options):
            return forced
        raise RuntimeError(
            f"backend {forced!r} was forced but does not support this call "
            f"(family={family!r}, dtype={xs.dtype}, device={xs.device}, options={options})"
        )
    for b in sorted(_BACKENDS.values(), key=lambda b: -b.priority):
        if family in b.families and b.ready() and b.supports(family, xs, state, params, options):
            return b.name
    return "reference"


def scan(family: str, step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[Tensor, Any]:
    """Run ``step`` over ``xs`` with the best backend for ``family`` (see module docstring)."""
    name = select(family, xs, state, params, options)
    if name == "reference":
        return reference_scan(step, xs, state, params, options)
    return _BACKENDS[name].run(family, xs, state, params, options)


# ----------------------------------------------------------------------------- built-in backends
# The fused CPU kernels (numba). Only the load hook imports numba; supports() is plain torch.
def _cpu_load() -> None:
    from spikekit.kernels import cpu

    cpu.load()


def _cpu_supports(*args: Any) -> bool:
    from spikekit.kernels import cpu

    return cpu.supports(*args)


def _cpu_run(*args: Any) -> tuple[Tensor, Any]:
    from spikekit.kernels import cpu

    return cpu.run(*args)


register(
    Backend(
        name="numba",
        families=frozenset({"if", "lif", "cuba_lif", "alif", "li"}),
        supports=_cpu_supports,
        run=_cpu_run,
        priority=10,
        load=_cpu_load,
    )
)
