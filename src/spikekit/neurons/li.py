"""Leaky integrator: the non-spiking readout (norse ``LICell``)."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, leak
from spikekit.neurons.lif import nir_decay_input, nir_scalar, nir_tau, nir_values

__all__ = ["LI", "LIParams", "LIState", "li_step"]


class LIParams(NamedTuple):
    """Parameters of :func:`li_step`: decays ``beta``, ``beta_syn`` and resting potential ``v_leak``."""

    beta: Tensor
    beta_syn: Tensor
    v_leak: Tensor


class LIState(NamedTuple):
    """State of :func:`li_step`: membrane ``v`` and synaptic current ``i``, ``[B, *features]``."""

    v: Tensor
    i: Tensor


def li_step(x: Tensor, state: LIState, params: LIParams, options: Options) -> tuple[Tensor, LIState]:
    """One step of a leaky integrator; the output is the membrane.

    Math:
        ``j = i + x``; ``v' = beta v + (1 - beta) v_leak + g j`` (``g = 1 - beta`` if
        ``decay_input`` else 1); ``i' = beta_syn j``. With ``beta_syn = 0`` this is the plain
        integrator ``v' = beta v + g x``.

    Args:
        x: input ``[B, *features]``. state: :class:`LIState`. params: :class:`LIParams`.
        options: only ``decay_input`` and ``time_dependent`` are used.

    Returns:
        ``(v', LIState(v', i'))``.
    """
    check_state_shape(x, state, "li_step")
    state = detach_if_independent(state, options)
    j = state.i + x
    v = leak(state.v, j, params.beta, params.v_leak, options.decay_input)
    return v, LIState(v, params.beta_syn * j)


class LI(Neuron):
    """Leaky-integrator readout layer; returns membrane traces, never spikes.

    Math:
        See :func:`li_step`. norse ``LICell(p=LIParameters(tau_mem_inv=a, tau_syn_inv=b), dt)``
        is ``LI(tau=1/a, tau_syn=1/b, dt=dt)``; ``tau_syn=None`` (or ``beta_syn=0``) gives
        ``v' = beta v + g x`` (a plain leaky readout).

    Args:
        tau: membrane time constant (default 10). beta: decay instead.
        tau_syn: synaptic time constant (default 5); ``beta_syn``: its decay instead.
        dt: time step. v_leak: resting potential. decay_input: scale input by ``1 - beta``.
        time_dependent: ``False`` detaches the state between steps.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"tau"``, ``"tau_syn"``, ``"v_leak"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output (membrane): same.

    Example:
        >>> import torch
        >>> LI(beta=0.5, beta_syn=0.0, decay_input=False)(torch.ones(3, 1, 1)).flatten()
        tensor([1.0000, 1.5000, 1.7500])
    """

    state_type = LIState
    params_type = LIParams
    step_fn = staticmethod(li_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("beta_syn", 5.0, tau="tau_syn", off=0.0, doc="synaptic current decay (0: none)"),
        Param("v_leak", 0.0, doc="resting potential"),
    )
    options_used = ("decay_input", "time_dependent")
    base_options = Options(surrogate=None, reset="none")

    @staticmethod
    def ann_activation(x: Tensor) -> Tensor:
        return x

    # ------------------------------------------------------------------ NIR exchange
    nir_nodes: ClassVar[tuple[str, ...]] = ("LI", "CubaLI", "I")

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """This layer as a ``nir.CubaLI``, ``nir.LI`` or ``nir.I`` node for time step ``dt``.

        Math:
            With a synaptic current (``beta_syn > 0``): ``nir.CubaLI`` with the conventions of
            :meth:`CubaLIF.to_nir <spikekit.neurons.CubaLIF.to_nir>` (``w_in = tau_syn / dt``).
            Without (``beta_syn = 0``): ``nir.LI`` (``tau = dt / (1 - beta)``, ``r = 1`` for
            ``decay_input=True`` else ``tau / dt``), or, with no leak either (``beta = 1``,
            ``decay_input=False``: ``v' = v + x``), the integrator ``nir.I`` with ``r = 1 / dt``.

        Args:
            dt: the time step the graph is written for.
            shape: the layer's per-sample feature shape.

        Returns:
            A NIR node with parameters of shape ``shape``.

        Shape:
            Every array of the node has shape ``shape``.

        Example:
            >>> type(LI(tau=4.0, tau_syn=None).to_nir(1.0, (3,))).__name__
            'LI'
        """
        import nir

        p = nir_values(self, shape)
        if bool(np.all(p["beta_syn"] == 0)):
            if bool(np.all(p["beta"] == 1)) and not self.options.decay_input:
                return nir.I(r=np.full(shape, 1.0 / dt))
            tau = nir_tau(p["beta"], dt, "LI", "beta")
            r = np.ones(shape) if self.options.decay_input else tau / dt
            return nir.LI(tau=tau, r=r, v_leak=p["v_leak"])
        tau_mem = nir_tau(p["beta"], dt, "LI", "beta")
        tau_syn = nir_tau(p["beta_syn"], dt, "LI", "beta_syn")
        return nir.CubaLI(
            tau_syn=tau_syn,
            tau_mem=tau_mem,
            r=np.ones(shape) if self.options.decay_input else tau_mem / dt,
            v_leak=p["v_leak"],
            w_in=tau_syn / dt,
        )

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> LI:
        """An :class:`LI` from a ``nir.LI``, ``nir.CubaLI`` or ``nir.I`` node for time step ``dt``.

        Args:
            node: the NIR node. dt: the time step to run at.
            **options: ``decay_input`` / ``time_dependent``, e.g. from the node metadata.

        Returns:
            The neuron (``nir.I`` is ``LI(beta=1, tau_syn=None, decay_input=False)``); a gain
            in ``r`` or ``w_in`` beyond the conventions of :meth:`to_nir` is applied by the importer.

        Example:
            >>> import nir, numpy as np
            >>> LI.from_nir(nir.I(r=np.ones(2)), dt=1.0).beta.item()
            1.0
        """
        kind = type(node).__name__
        if kind == "I":
            options["decay_input"] = False
            return cls(beta=1.0, tau_syn=None, v_leak=0.0, **options)
        if kind == "LI":
            tau = np.asarray(node.tau, dtype=np.float64)
            options.setdefault("decay_input", nir_decay_input(node.r, tau, dt))
            return cls(tau=nir_scalar(tau), tau_syn=None, dt=dt, v_leak=nir_scalar(node.v_leak), **options)
        tau_mem = np.asarray(node.tau_mem, dtype=np.float64)
        options.setdefault("decay_input", nir_decay_input(node.r, tau_mem, dt))
        return cls(
            tau=nir_scalar(tau_mem),
            tau_syn=nir_scalar(node.tau_syn),
            dt=dt,
            v_leak=nir_scalar(node.v_leak),
            **options,
        )
