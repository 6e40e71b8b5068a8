"""The charge-fire-reset rule and the options that steer it: a leaf every neuron builds on.

Firing, the three reset kinds, delayed reset, detached reset, graded output and the relaxed
(smooth) mode are written here once (:func:`integrate`); a neuron supplies only its
sub-threshold ``charge``. This module imports nothing from spikekit but :mod:`spikekit.surrogate`,
so the kernels (which trace step functions built from it) never need the neuron modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor

from spikekit import surrogate as _sg

__all__ = ["Options", "RESETS", "fire", "leak", "integrate", "detach_if_independent", "check_state_shape"]

RESETS = ("hard", "soft", "none")


@dataclass(frozen=True)
class Options:
    """Options that change a neuron's code path. Hashable, so kernels can key on them.

    Args:
        surrogate: surrogate gradient used by the spike (``None`` for non-spiking neurons).
        reset: ``"hard"`` (set to ``v_reset``), ``"soft"`` (subtract the threshold) or ``"none"``.
        detach_reset: stop the gradient through the spike in the reset term.
        reset_delay: apply the reset at the start of the *next* step, as snntorch's
            ``reset_delay=True``; the stored membrane is then the pre-reset value.
        decay_input: scale the input by ``1 - beta`` (spikingjelly ``decay_input``, norse).
        spiking: ``False`` relaxes the spike to the surrogate's smooth primitive
            (differentiable dynamics, used for gradcheck and smooth training).
        binary: ``False`` outputs the graded value ``h - v_th`` instead of spikes (eve-mli).
        time_dependent: ``False`` detaches the state between steps (eve-mli).
    """

    surrogate: _sg.Surrogate | None = _sg.ATan()  # noqa: RUF009 - frozen, so sharing one is safe
    reset: str = "hard"
    detach_reset: bool = False
    reset_delay: bool = False
    decay_input: bool = True
    spiking: bool = True
    binary: bool = True
    time_dependent: bool = True

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.surrogate is not None and not isinstance(self.surrogate, _sg.Surrogate):
            raise TypeError(
                f"surrogate must be a Surrogate instance or None, got {type(self.surrogate).__name__}"
            )
        for f in ("detach_reset", "reset_delay", "decay_input", "spiking", "binary", "time_dependent"):
            if not isinstance(getattr(self, f), bool):
                raise TypeError(f"{f} must be a bool, got {getattr(self, f)!r}")


def fire(x: Tensor, options: Options) -> Tensor:
    """Spike (with surrogate gradient) or, in relaxed mode, the smooth primitive of ``x = h - v_th``."""
    assert options.surrogate is not None
    return _sg.spike(x, options.surrogate) if options.spiking else options.surrogate.primitive(x)


def leak(v: Tensor, drive: Tensor, beta: Tensor, v_leak: Tensor, decay_input: bool) -> Tensor:
    """Forward-Euler leaky integration ``beta v + (1 - beta) v_leak + g drive``.

    ``g = 1 - beta`` when ``decay_input`` else ``1``; ``beta = 1 - dt / tau``.
    """
    k = 1 - beta
    return beta * v + k * v_leak + (k * drive if decay_input else drive)


def integrate(
    v: Tensor,
    charge: Callable[[Tensor], Tensor],
    v_th: Tensor,
    v_reset: Tensor,
    options: Options,
) -> tuple[Tensor, Tensor, Tensor]:
    """Charge, fire and reset: the one place where spiking and every reset kind are written.

    Args:
        v: membrane carried from the previous step.
        charge: the neuron's sub-threshold update ``v -> h``.
        v_th: threshold (may vary per step, e.g. adaptive).
        v_reset: reset potential for ``reset="hard"``.
        options: see :class:`Options`.

    Returns:
        ``(out, z, v_next)``: the output (spikes, or ``h - v_th`` when not binary), the spikes,
        and the membrane to carry (post-reset, or pre-reset with ``reset_delay``).
    """
    if options.reset_delay:
        r = fire(v - v_th, options)
        if options.detach_reset:
            r = r.detach()
        if options.reset == "hard":
            h = charge(v - r * (v - v_reset))
        elif options.reset == "soft":
            h = charge(v) - r * v_th
        else:
            h = charge(v)
        z = fire(h - v_th, options)
        v_next = h
    else:
        h = charge(v)
        z = fire(h - v_th, options)
        zr = z.detach() if options.detach_reset else z
        if options.reset == "hard":
            v_next = h - zr * (h - v_reset)
        elif options.reset == "soft":
            v_next = h - zr * v_th
        else:
            v_next = h
    out = z if options.binary else h - v_th
    return out, z, v_next


def detach_if_independent(state: NamedTuple, options: Options) -> Any:
    """eve-mli's ``time_dependent=False``: cut the graph between steps."""
    if options.time_dependent:
        return state
    return type(state)(*(t.detach() for t in state))


def check_state_shape(x: Tensor, state: tuple[Tensor, ...], who: str) -> None:
    """Refuse a state whose shape differs from the input's: torch would broadcast it silently.

    A state of batch 1 given with an input of batch 4 would run as four copies of one neuron
    state, and a state of another batch size would fail deep in an op or, when one side is 1,
    not at all. Shapes only (no data, no host sync), so tracing is unaffected: the kernel
    generator traces a step on 0-d tensors, where the shapes always agree, and under
    ``torch.compile`` the comparison is a shape guard.

    Args:
        x: the step's input ``[B, *features]``.
        state: the step's state NamedTuple; every field must have ``x``'s shape.
        who: the step function's name for the message.

    Raises:
        ValueError: a field's shape differs from ``x``'s (both shapes named).
    """
    shape = x.shape
    for f, t in enumerate(state):
        if t.shape != shape:
            name = state._fields[f] if hasattr(state, "_fields") else str(f)
            raise ValueError(
                f"{who}: state.{name} has shape {tuple(t.shape)} but the input x has shape {tuple(shape)}; "
                f"the state must have the shape of one input time slice [B, *features] (it is not "
                f"broadcast: a batch size change needs a fresh state)"
            )
