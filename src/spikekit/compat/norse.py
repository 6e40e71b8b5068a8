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

``LIFRecurrentCell`` is :class:`spikekit.layers.Recurrent` around the native ``CubaLIF`` (with
norse's input and recurrent weight matrices, its initialisation and its detached reset); its
one-step call takes and returns norse's ``LIFState(z, v, i)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikekit import surrogate as _sg
from spikekit.layers.recurrent import Recurrent, RecurrentState
from spikekit.neurons.adex import AdEx
from spikekit.neurons.cuba_lif import CubaLIF, CubaLIFState
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
    "LIFState",
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


def _lif_keywords(p: Any, dt: float) -> dict[str, Any]:
    """``spk.CubaLIF`` keywords of norse's ``LIFParameters`` ``p`` with time step ``dt``."""
    return dict(
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
        super().__init__(**_lif_keywords(LIFParameters() if p is None else p, dt))


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


class LIFState(NamedTuple):
    """norse ``LIFState`` of :class:`LIFRecurrentCell`: last spikes ``z``, membrane ``v``,
    synaptic current ``i``, each ``[B, hidden_size]``."""

    z: Tensor
    v: Tensor
    i: Tensor


class _RecurrentWeights(nn.Module):
    """``z -> z W^T`` with norse's initialisation; without autapses the diagonal is held at 0.

    norse zeroes the diagonal once and masks its gradient with a hook; multiplying by a mask
    in the forward gives the same values and gradients and survives a loaded state dict.
    """

    def __init__(self, hidden_size: int, weight: Tensor | None, autapses: bool) -> None:
        super().__init__()
        if weight is None:
            weight = torch.randn(hidden_size, hidden_size) * (2.0 / hidden_size) ** 0.5
        self.weight = nn.Parameter(torch.as_tensor(weight).clone())
        self.autapses = bool(autapses)
        if not self.autapses:
            with torch.no_grad():
                self.weight.fill_diagonal_(0.0)

    def forward(self, z: Tensor) -> Tensor:
        w = self.weight
        if not self.autapses:
            w = w * (1 - torch.eye(w.shape[0], dtype=w.dtype, device=w.device))
        return F.linear(z, w)


class LIFRecurrentCell(Recurrent):
    """norse ``LIFRecurrentCell``: a current-based LIF layer with input and recurrent weights.

    Built as :class:`spikekit.layers.Recurrent` around ``spk.CubaLIF(**LIFCell's mapping,
    detach_reset=True)`` (norse detaches the reset in its recurrent cell, not in ``LIFCell``)
    and recurrent weights ``W_rec``, after the input weights ``W_in`` (no biases).
    The weights are drawn as norse draws them (``randn * sqrt(2 / hidden_size)``, input first),
    so the same seed gives the same initial weights.

    Math:
        ``j = i + W_in x + W_rec z_prev``; ``v_d = v + dt tau_mem_inv (v_leak - v + j)``;
        ``z = H(v_d - v_th)``; ``v' = v_d`` reset to ``v_reset`` by the detached ``z``;
        ``i' = (1 - dt tau_syn_inv) j``.

    Args:
        input_size, hidden_size: layer sizes.
        p: :class:`LIFParameters` (or norse's). dt: time step (default 0.001).
        input_weights, recurrent_weights: initial weights ``[hidden, input]``, ``[hidden, hidden]``.
        autapses: allow self-connections (default ``False``: the diagonal of ``W_rec`` is 0
            and gets no gradient).

    Returns:
        ``cell(x, state=None)`` returns ``(z, LIFState(z, v, i))``; ``cell.scan(xs, state=None)``
        runs a ``[T, B, input_size]`` sequence and returns ``(zs, RecurrentState)``.

    Shape:
        ``x``: ``[B, input_size]``; ``z`` and every state field: ``[B, hidden_size]``.

    Example:
        >>> import torch
        >>> cell = LIFRecurrentCell(2, 3)
        >>> z, s = cell(torch.ones(4, 2))
        >>> z.shape, s.v.shape, bool(cell.recurrent_weights.diagonal().eq(0).all())
        (torch.Size([4, 3]), torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: Any = None,
        input_weights: Tensor | None = None,
        recurrent_weights: Tensor | None = None,
        autapses: bool = False,
        dt: float = 0.001,
    ) -> None:
        if input_weights is None:
            input_weights = torch.randn(hidden_size, input_size) * (2.0 / hidden_size) ** 0.5
        neuron = CubaLIF(**_lif_keywords(LIFParameters() if p is None else p, dt), detach_reset=True)
        super().__init__(neuron, _RecurrentWeights(hidden_size, recurrent_weights, autapses))
        self.input_weights = nn.Parameter(torch.as_tensor(input_weights).clone())
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)

    @property
    def recurrent_weights(self) -> Tensor:
        """``W_rec`` ``[hidden_size, hidden_size]`` (norse's attribute name)."""
        return self.recurrent.weight

    def forward(self, x: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:  # type: ignore[override]
        """One step in norse's call form: ``(z, LIFState(z, v, i))``; ``state=None`` starts at rest."""
        if self.neuron._stream is not None:
            raise RuntimeError(
                "LIFRecurrentCell takes its state as an argument (norse's call form) and cannot run "
                "inside spikekit.stepwise; use spikekit.layers.Recurrent there"
            )
        native = None if state is None else RecurrentState(CubaLIFState(state.v, state.i), state.z)
        z, s = self.step(F.linear(x, self.input_weights), native)
        return z, LIFState(z, s.neuron.v, s.neuron.i)

    def scan(self, xs: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """A whole sequence ``[T, B, input_size]``: ``(zs, RecurrentState)``."""
        return super().scan(F.linear(xs, self.input_weights), state)
