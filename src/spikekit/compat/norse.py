"""norse's cells and parameter tuples, built as native spikekit neurons.

``from spikekit.compat import norse`` gives ``LIFBoxCell``, ``LIFCell``, ``LICell``,
``IAFCell`` and ``LIFAdExCell`` taking norse's parameter tuples (``LIFParameters`` etc.,
defined here with norse's field names and defaults; norse's own tuples are accepted too,
read by field name) and ``dt``, and norse's call form ``z, s = cell(x, s)`` with ``s=None``
first. Each cell is a subclass of a native neuron that only maps the arguments, so the
fused kernels, ``.scan(xs)`` (a whole ``[T, B, ...]`` sequence) and ``spk.record`` apply.
norse itself is never imported.

The state is spikekit's native state (``LIFState(v)``, ``CubaLIFState(v, i)``,
``LIState(v, i)``, ``IFState(v)``, ``AdExState(v, i, w)``): field names match norse's
feed-forward states except AdEx, whose adaptation ``a`` is our ``w``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from spikekit import surrogate as _sg
from spikekit.neurons.adex import AdEx
from spikekit.neurons.cuba_lif import CubaLIF
from spikekit.neurons.if_ import IF
from spikekit.neurons.li import LI
from spikekit.neurons.lif import LIF

__all__ = [
    "LIFBoxParameters",
    "LIFParameters",
    "LIParameters",
    "IAFParameters",
    "LIFAdExParameters",
    "LIFBoxCell",
    "LIFCell",
    "LICell",
    "IAFCell",
    "LIFAdExCell",
    "LIFRecurrentCell",
    "threshold_surrogate",
]


class LIFBoxParameters(NamedTuple):
    """norse ``LIFBoxParameters`` (field names and defaults)."""

    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    method: str = "super"
    alpha: float | Tensor = 100.0


class LIFParameters(NamedTuple):
    """norse ``LIFParameters`` (field names and defaults)."""

    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    method: str = "super"
    alpha: float | Tensor = 100.0


class LIParameters(NamedTuple):
    """norse ``LIParameters`` (field names and defaults)."""

    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0


class IAFParameters(NamedTuple):
    """norse ``IAFParameters`` (field names and defaults)."""

    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    method: str = "super"
    alpha: float | Tensor = 100.0


class LIFAdExParameters(NamedTuple):
    """norse ``LIFAdExParameters`` (field names and defaults)."""

    adaptation_current: float | Tensor = 4.0
    adaptation_spike: float | Tensor = 0.02
    delta_T: float | Tensor = 0.5
    tau_ada_inv: float | Tensor = 2.0
    tau_syn_inv: float | Tensor = 200.0
    tau_mem_inv: float | Tensor = 100.0
    v_leak: float | Tensor = 0.0
    v_th: float | Tensor = 1.0
    v_reset: float | Tensor = 0.0
    method: str = "super"
    alpha: float | Tensor = 100.0


def threshold_surrogate(method: str, alpha: float | Tensor = 100.0) -> _sg.Surrogate:
    """The spikekit surrogate of norse's ``method`` / ``alpha``.

    Args:
        method: ``"super"`` (norse 1.1.0 ignores ``alpha`` there: ``FastSigmoid(1)``) or
            ``"triangle"`` (``Triangle(alpha)``).
        alpha: norse's sharpness.

    Returns:
        A :class:`spikekit.surrogate.Surrogate`.
    """
    if method == "super":
        return _sg.FastSigmoid(alpha=1.0)
    if method == "triangle":
        return _sg.Triangle(alpha=float(alpha))
    raise NotImplementedError(
        f"norse method={method!r} is not supported; use 'super' or 'triangle', or build the native "
        f"neuron with any spikekit.surrogate object ('adjoint' and 'heaviside' have no equivalent)"
    )


def _v(p: Any, name: str) -> Any:
    """A parameter value: a Python float for a 0-dim tensor, else the tensor as given."""
    t = getattr(p, name)
    if isinstance(t, Tensor):
        return t.item() if t.ndim == 0 else t.detach()
    return float(t)


def _inv(p: Any, name: str) -> Any:
    """A time constant from norse's inverse one (``tau = 1 / tau_inv``)."""
    t = getattr(p, name)
    if isinstance(t, Tensor) and t.ndim > 0:
        return 1 / t.detach()
    return 1 / float(t)


class _Cell:
    """norse's call form on top of a native neuron: ``z, s = cell(x, s)``, ``s=None`` first."""

    __signature__ = None
    _stream: Any
    step: Any

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One step: ``(z, new_state)`` (the native state; ``None`` starts at rest)."""
        if self._stream is not None:
            raise RuntimeError(
                f"{type(self).__name__} takes its state as an argument (norse's call form) and cannot "
                f"run inside spikekit.stepwise; use the native neuron there"
            )
        return self.step(x, state)


class LIFBoxCell(_Cell, LIF):
    """norse ``LIFBoxCell``: LIF without synaptic current, one step per call.

    Built as ``spk.LIF(tau=1/tau_mem_inv, dt=dt, v_leak, v_th, v_reset, reset="hard",
    decay_input=True, surrogate=threshold_surrogate(method, alpha))``.

    Args:
        p: :class:`LIFBoxParameters` (or norse's). dt: time step (default 0.001).

    Returns:
        ``cell(x, state=None)`` returns ``(z, LIFState(v))``.

    Shape:
        ``x``: ``[B, *features]``; ``z`` and ``state.v``: same.
    """

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        p = LIFBoxParameters() if p is None else p
        super().__init__(
            tau=_inv(p, "tau_mem_inv"),
            dt=dt,
            v_leak=_v(p, "v_leak"),
            v_th=_v(p, "v_th"),
            v_reset=_v(p, "v_reset"),
            reset="hard",
            decay_input=True,
            surrogate=threshold_surrogate(p.method, _v(p, "alpha")),
        )


class LIFCell(_Cell, CubaLIF):
    """norse ``LIFCell``: current-based LIF, one step per call.

    Built as ``spk.CubaLIF(tau=1/tau_mem_inv, tau_syn=1/tau_syn_inv, dt=dt, ..., reset="hard",
    decay_input=True, surrogate=threshold_surrogate(method, alpha))``.

    Args:
        p: :class:`LIFParameters` (or norse's). dt: time step (default 0.001).

    Returns:
        ``cell(x, state=None)`` returns ``(z, CubaLIFState(v, i))``.

    Shape:
        ``x``: ``[B, *features]``; ``z``, ``state.v``, ``state.i``: same.
    """

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        p = LIFParameters() if p is None else p
        super().__init__(
            tau=_inv(p, "tau_mem_inv"),
            tau_syn=_inv(p, "tau_syn_inv"),
            dt=dt,
            v_leak=_v(p, "v_leak"),
            v_th=_v(p, "v_th"),
            v_reset=_v(p, "v_reset"),
            reset="hard",
            decay_input=True,
            surrogate=threshold_surrogate(p.method, _v(p, "alpha")),
        )


class LICell(_Cell, LI):
    """norse ``LICell``: leaky integrator (non-spiking readout), one step per call.

    Args:
        p: :class:`LIParameters` (or norse's). dt: time step (default 0.001).

    Returns:
        ``cell(x, state=None)`` returns ``(v, LIState(v, i))``.

    Shape:
        ``x``: ``[B, *features]``; ``v``, ``state.i``: same.
    """

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        p = LIParameters() if p is None else p
        super().__init__(
            tau=_inv(p, "tau_mem_inv"), tau_syn=_inv(p, "tau_syn_inv"), dt=dt, v_leak=_v(p, "v_leak")
        )


class IAFCell(_Cell, IF):
    """norse ``IAFCell``: integrate-and-fire, one step per call.

    Args:
        p: :class:`IAFParameters` (or norse's). dt: accepted for norse's signature; unused
            (norse's IAF adds the input without ``dt`` as well).

    Returns:
        ``cell(x, state=None)`` returns ``(z, IFState(v))``.

    Shape:
        ``x``: ``[B, *features]``; ``z``, ``state.v``: same.
    """

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        p = IAFParameters() if p is None else p
        super().__init__(
            v_th=_v(p, "v_th"),
            v_reset=_v(p, "v_reset"),
            reset="hard",
            surrogate=threshold_surrogate(p.method, _v(p, "alpha")),
        )


class LIFAdExCell(_Cell, AdEx):
    """norse ``LIFAdExCell`` (and one step of ``LIFAdEx``): adaptive exponential LIF.

    Built as ``spk.AdEx(tau=1/tau_mem_inv, tau_syn=1/tau_syn_inv, tau_adapt=1/tau_ada_inv,
    a=adaptation_current, b=adaptation_spike, delta_T, theta_rh=v_th, v_th, v_leak, v_reset,
    reset="hard", decay_input=True)`` (norse centres the exponential on the threshold).

    Args:
        p: :class:`LIFAdExParameters` (or norse's). dt: time step (default 0.001).

    Returns:
        ``cell(x, state=None)`` returns ``(z, AdExState(v, i, w))``; norse's ``a`` is ``w``.

    Shape:
        ``x``: ``[B, *features]``; every state field: same.
    """

    def __init__(self, p: Any = None, dt: float = 0.001) -> None:
        p = LIFAdExParameters() if p is None else p
        super().__init__(
            tau=_inv(p, "tau_mem_inv"),
            tau_syn=_inv(p, "tau_syn_inv"),
            tau_adapt=_inv(p, "tau_ada_inv"),
            dt=dt,
            a=_v(p, "adaptation_current"),
            b=_v(p, "adaptation_spike"),
            delta_T=_v(p, "delta_T"),
            theta_rh=_v(p, "v_th"),
            v_th=_v(p, "v_th"),
            v_leak=_v(p, "v_leak"),
            v_reset=_v(p, "v_reset"),
            reset="hard",
            decay_input=True,
            surrogate=threshold_surrogate(p.method, _v(p, "alpha")),
        )


class LIFRecurrentCell:
    """norse ``LIFRecurrentCell`` is not provided yet (see docs/migration/norse.md).

    The native equivalent to check against norse is ``nn.Linear(input_size, hidden_size,
    bias=False)`` followed by ``spk.layers.Recurrent(spk.CubaLIF(...), nn.Linear(hidden_size,
    hidden_size, bias=False))``; its exactness against norse has not been tested.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "spikekit.compat.norse.LIFRecurrentCell is not implemented yet; build "
            "nn.Linear(input_size, hidden_size, bias=False) followed by "
            "spikekit.layers.Recurrent(spikekit.CubaLIF(...), nn.Linear(hidden_size, hidden_size, bias=False))"
        )
