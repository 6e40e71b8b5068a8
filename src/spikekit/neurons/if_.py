"""Integrate-and-fire neuron (no leak)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from torch import Tensor

from spikekit import surrogate as _sg
from spikekit.neurons._base import (
    Neuron,
    Options,
    check_threshold,
    detach_if_independent,
    integrate,
    options_from,
)

__all__ = ["IF", "IFParams", "IFState", "if_step"]


class IFParams(NamedTuple):
    """Parameters of :func:`if_step`: threshold ``v_th`` and hard-reset potential ``v_reset``."""

    v_th: Tensor
    v_reset: Tensor


class IFState(NamedTuple):
    """State of :func:`if_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def if_step(x: Tensor, state: IFState, params: IFParams, options: Options) -> tuple[Tensor, IFState]:
    """One step of an integrate-and-fire neuron.

    Math:
        ``h = v + x``; ``z = H(h - v_th)``; reset as in :func:`~spikekit.neurons.lif_step`.

    Args:
        x: input ``[B, *features]``. state: :class:`IFState`. params: :class:`IFParams`.
        options: :class:`~spikekit.neurons.Options` (``decay_input`` is ignored).

    Returns:
        ``(z, IFState(v'))``.
    """
    state = detach_if_independent(state, options)
    out, _, v = integrate(state.v, lambda v: v + x, params.v_th, params.v_reset, options)
    return out, IFState(v)


class IF(Neuron):
    """Integrate-and-fire neuron layer (eve-mli/spikingjelly ``IFNode``).

    Math:
        See :func:`if_step`. A fresh state starts at ``v_reset`` for a hard reset and at 0
        otherwise (spikingjelly's convention).

    Args:
        v_th: threshold. v_reset: hard-reset potential.
        reset: ``"hard"``, ``"soft"`` or ``"none"``.
        surrogate: a :class:`~spikekit.surrogate.Surrogate` or its name.
        detach_reset, reset_delay, binary, time_dependent: see :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"v_th"``, ``"v_reset"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf input.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``IFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> IF()(torch.full((4, 1, 1), 0.5)).flatten()
        tensor([0., 1., 0., 1.])
    """

    family = "if"
    state_type = IFState
    params_type = IFParams
    step_fn = staticmethod(if_step)
    learn_aliases = {"v_th": "v_th", "v_reset": "v_reset"}

    def __init__(
        self,
        *,
        v_th: float | Tensor = 1.0,
        v_reset: float | Tensor = 0.0,
        reset: str = "hard",
        surrogate: str | _sg.Surrogate = "atan",
        detach_reset: bool = False,
        reset_delay: bool = False,
        binary: bool = True,
        time_dependent: bool = True,
        shape: int | Iterable[int] | str | None = None,
        learn: str | Iterable[str] = (),
        batch_first: bool = False,
        check_finite: bool = False,
    ) -> None:
        super().__init__()
        options = options_from(
            surrogate=surrogate,
            reset=reset,
            detach_reset=detach_reset,
            reset_delay=reset_delay,
            decay_input=False,
            binary=binary,
            time_dependent=time_dependent,
        )
        check_threshold(v_th, v_reset, reset, "IF")
        self._setup(
            values={"v_th": v_th, "v_reset": v_reset},
            kinds={},
            options=options,
            shape=shape,
            learn=learn,
            batch_first=batch_first,
            check_finite=check_finite,
        )

    def _rest(self, params: Any) -> Tensor:
        return params.v_reset if self.options.reset == "hard" else params.v_reset * 0

    def _options_used(self) -> tuple[str, ...]:
        return ()
