"""Integrate-and-fire neuron (no leak)."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate
from spikekit.neurons.lif import nir_scalar, nir_values

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
    check_state_shape(x, state, "if_step")
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

    state_type = IFState
    params_type = IFParams
    step_fn = staticmethod(if_step)
    parameters_decl = (
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
    )
    options_used = tuple(o for o in Neuron.options_used if o != "decay_input")
    base_options = Options(decay_input=False)

    def _rest(self, params: Any) -> Tensor:
        return params.v_reset if self.options.reset == "hard" else params.v_reset * 0

    # ------------------------------------------------------------------ NIR exchange
    nir_nodes: ClassVar[tuple[str, ...]] = ("IF",)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """This layer as a ``nir.IF`` node for time step ``dt``.

        Math:
            NIR's ``dv/dt = r I`` under forward Euler is ``v' = v + dt r x``, so ``h = v + x``
            is ``r = 1 / dt`` (spikingjelly's convention too); the reset is to ``v_reset``.

        Args:
            dt: the time step the graph is written for.
            shape: the layer's per-sample feature shape.

        Returns:
            A ``nir.IF`` node with parameters of shape ``shape``.

        Shape:
            Every array of the node has shape ``shape``.

        Example:
            >>> IF(v_th=2.0).to_nir(0.5, (2,)).r.tolist()
            [2.0, 2.0]
        """
        import nir

        p = nir_values(self, shape)
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=p["v_th"], v_reset=p["v_reset"])

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> IF:
        """An :class:`IF` from a ``nir.IF`` node for time step ``dt``.

        Args:
            node: the ``nir.IF`` node. dt: the time step to run at.
            **options: constructor options (``reset``, ``surrogate``...), e.g. from the node metadata.

        Returns:
            The neuron; an ``r`` other than ``1 / dt`` is an input gain ``r dt`` the importer applies.

        Example:
            >>> import nir, numpy as np
            >>> IF.from_nir(nir.IF(r=np.ones(2), v_threshold=np.full(2, 3.0)), dt=1.0).v_th.item()
            3.0
        """
        options.pop("decay_input", None)
        return cls(v_th=nir_scalar(node.v_threshold), v_reset=nir_scalar(node.v_reset), **options)
