"""Current-based LIF: a LIF membrane driven by an exponentially decaying synaptic current."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate, leak
from spikekit.neurons.lif import nir_decay_input, nir_scalar, nir_tau, nir_values

__all__ = ["CubaLIF", "CubaLIFParams", "CubaLIFState", "cuba_lif_step"]


class CubaLIFParams(NamedTuple):
    """Parameters of :func:`cuba_lif_step`.

    Attributes:
        beta: membrane decay ``1 - dt / tau``. beta_syn: current decay ``1 - dt / tau_syn``.
        v_th: threshold. v_reset: hard-reset potential. v_leak: resting potential.
    """

    beta: Tensor
    beta_syn: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class CubaLIFState(NamedTuple):
    """State of :func:`cuba_lif_step`: membrane ``v`` and synaptic current ``i``, ``[B, *features]``."""

    v: Tensor
    i: Tensor


def cuba_lif_step(
    x: Tensor, state: CubaLIFState, params: CubaLIFParams, options: Options
) -> tuple[Tensor, CubaLIFState]:
    """One step of a current-based LIF neuron (norse ``LIFCell`` semantics).

    Math:
        ``j = i + x``; ``h = beta v + (1 - beta) v_leak + g j`` (``g = 1 - beta`` if
        ``decay_input`` else 1); ``z = H(h - v_th)``; reset as in
        :func:`~spikekit.neurons.lif_step`; ``i' = beta_syn j``.

    Args:
        x: input current jump ``[B, *features]``. state: :class:`CubaLIFState`.
        params: :class:`CubaLIFParams`. options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, CubaLIFState(v', i'))``.
    """
    check_state_shape(x, state, "cuba_lif_step")
    state = detach_if_independent(state, options)
    p = params
    j = state.i + x
    out, _, v = integrate(
        state.v, lambda v: leak(v, j, p.beta, p.v_leak, options.decay_input), p.v_th, p.v_reset, options
    )
    return out, CubaLIFState(v, p.beta_syn * j)


class CubaLIF(Neuron):
    """Current-based leaky integrate-and-fire layer (norse's default ``LIFCell``).

    Math:
        See :func:`cuba_lif_step`. norse's ``LIFParameters(tau_mem_inv=a, tau_syn_inv=b)`` with
        time step ``dt`` is ``CubaLIF(tau=1/a, tau_syn=1/b, dt=dt)``.

    Args:
        tau: membrane time constant (default 10). beta: membrane decay instead of ``tau``.
        tau_syn: synaptic time constant (default 5). beta_syn: current decay instead.
        dt: time step. v_th, v_reset, v_leak: potentials.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"tau"``, ``"tau_syn"``, ``"v_th"``,
            ``"v_reset"``, ``"v_leak"`` (or ``"beta"``, ``"beta_syn"``).
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``CubaLIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> CubaLIF()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 3, 4])
    """

    state_type = CubaLIFState
    params_type = CubaLIFParams
    step_fn = staticmethod(cuba_lif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("beta_syn", 5.0, tau="tau_syn", doc="synaptic current decay"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )

    # ------------------------------------------------------------------ NIR exchange
    nir_nodes: ClassVar[tuple[str, ...]] = ("CubaLIF",)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """This layer as a ``nir.CubaLIF`` node for time step ``dt``.

        Math:
            NIR's ``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = (v_leak - v) + r I`` under
            forward Euler (current first, then the membrane from the new current) is
            ``cuba_lif_step`` with ``j`` as ``I``: ``tau_syn = dt / (1 - beta_syn)``,
            ``w_in = tau_syn / dt`` (the input jumps the current by ``x``),
            ``tau_mem = dt / (1 - beta)``, ``r = 1`` (``decay_input=True``) or ``tau_mem / dt``.
            snntorch and spikingjelly write the same; norse's exporter writes ``w_in = 1``.

        Args:
            dt: the time step the graph is written for.
            shape: the layer's per-sample feature shape.

        Returns:
            A ``nir.CubaLIF`` node with parameters of shape ``shape``.

        Shape:
            Every array of the node has shape ``shape``.

        Example:
            >>> CubaLIF(tau=8.0, tau_syn=4.0).to_nir(1.0, (1,)).w_in.tolist()
            [4.0]
        """
        import nir

        p = nir_values(self, shape)
        tau_mem = nir_tau(p["beta"], dt, "CubaLIF", "beta")
        tau_syn = nir_tau(p["beta_syn"], dt, "CubaLIF", "beta_syn")
        return nir.CubaLIF(
            tau_syn=tau_syn,
            tau_mem=tau_mem,
            r=np.ones(shape) if self.options.decay_input else tau_mem / dt,
            v_leak=p["v_leak"],
            v_threshold=p["v_th"],
            v_reset=p["v_reset"],
            w_in=tau_syn / dt,
        )

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> CubaLIF:
        """A :class:`CubaLIF` from a ``nir.CubaLIF`` node for time step ``dt``.

        Args:
            node: the ``nir.CubaLIF`` node. dt: the time step to run at.
            **options: constructor options (``reset``, ``surrogate``...), e.g. from the node metadata.

        Returns:
            The neuron; ``w_in`` other than ``tau_syn / dt`` and ``r`` other than ``1`` or
            ``tau_mem / dt`` are an input gain the importer applies.

        Example:
            >>> import nir, numpy as np
            >>> one = np.ones(1)
            >>> node = nir.CubaLIF(tau_syn=2 * one, tau_mem=4 * one, r=one, v_leak=0 * one, v_threshold=one)
            >>> n = CubaLIF.from_nir(node, dt=1.0)
            >>> n.beta.item(), n.beta_syn.item()
            (0.75, 0.5)
        """
        tau_mem = np.asarray(node.tau_mem, dtype=np.float64)
        options.setdefault("decay_input", nir_decay_input(node.r, tau_mem, dt))
        return cls(
            tau=nir_scalar(tau_mem),
            tau_syn=nir_scalar(node.tau_syn),
            dt=dt,
            v_th=nir_scalar(node.v_threshold),
            v_reset=nir_scalar(node.v_reset),
            v_leak=nir_scalar(node.v_leak),
            **options,
        )
