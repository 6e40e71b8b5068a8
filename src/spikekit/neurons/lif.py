"""Leaky integrate-and-fire neuron (no synaptic current)."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate, leak

__all__ = [
    "LIF",
    "LIFParams",
    "LIFState",
    "lif_step",
    "nir_values",
    "nir_scalar",
    "nir_tau",
    "nir_decay_input",
]


class LIFParams(NamedTuple):
    """Parameters of :func:`lif_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: membrane decay per step, ``1 - dt / tau``.
        v_th: firing threshold.
        v_reset: reset potential (hard reset).
        v_leak: resting potential the membrane decays towards.
    """

    beta: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class LIFState(NamedTuple):
    """State of :func:`lif_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def lif_step(x: Tensor, state: LIFState, params: LIFParams, options: Options) -> tuple[Tensor, LIFState]:
    """One step of a leaky integrate-and-fire neuron.

    Math:
        ``h = beta v + (1 - beta) v_leak + g x`` with ``g = 1 - beta`` if ``decay_input``
        else ``1``; ``z = H(h - v_th)``; then ``v' = h - z (h - v_reset)`` (hard),
        ``v' = h - z v_th`` (soft) or ``v' = h`` (none). With ``reset_delay`` the reset of a
        spike is applied at the next step (snntorch): ``h = beta v + ... - z_prev v_th``.

    Args:
        x: input current ``[B, *features]``.
        state: :class:`LIFState`.
        params: :class:`LIFParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, LIFState(v'))``: spikes (or ``h - v_th`` if not binary) and the new state.
    """
    check_state_shape(x, state, "lif_step")
    state = detach_if_independent(state, options)
    p = params
    out, _, v = integrate(
        state.v, lambda v: leak(v, x, p.beta, p.v_leak, options.decay_input), p.v_th, p.v_reset, options
    )
    return out, LIFState(v)


class LIF(Neuron):
    """Leaky integrate-and-fire neuron layer.

    Math:
        See :func:`lif_step`. ``beta = 1 - dt / tau`` (forward Euler, as spikingjelly and
        norse), or give ``beta`` directly (snntorch).

    Args:
        tau: membrane time constant (same unit as ``dt``); default 2.0. Scalar or tensor.
        beta: decay factor in [0, 1] instead of ``tau``.
        dt: integration time step.
        v_th: threshold. v_reset: hard-reset potential. v_leak: resting potential.
        reset: ``"hard"``, ``"soft"`` (subtract) or ``"none"``.
        surrogate: a :class:`~spikekit.surrogate.Surrogate` or its name.
        detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``) ``[*features]`` (eve ``neuron_wise``); ``None``
            shares one value across neurons unless a tensor parameter sets the shape.
        learn: names to learn, any of ``"tau"``/``"beta"``, ``"v_th"``, ``"v_reset"``, ``"v_leak"``.
            A learnt decay is reparametrised ``beta = sigmoid(w)``.
        batch_first: take and return ``[B, T, *features]``.
        check_finite: raise on NaN/inf input.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``LIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> lif = LIF(tau=2.0)
        >>> lif(torch.full((3, 1, 2), 1.5)).squeeze(1)
        tensor([[0., 0.],
                [1., 1.],
                [0., 0.]])
    """

    state_type = LIFState
    params_type = LIFParams
    step_fn = staticmethod(lif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 2.0, tau="tau", doc="membrane decay"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )
    ann_activation = staticmethod(F.leaky_relu)

    # ------------------------------------------------------------------ NIR exchange
    nir_nodes: ClassVar[tuple[str, ...]] = ("LIF",)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """This layer as a ``nir.LIF`` node for time step ``dt``.

        Math:
            NIR's ``tau dv/dt = (v_leak - v) + r I`` under forward Euler is ``lif_step`` with
            ``tau = dt / (1 - beta)`` and ``r = 1`` (``decay_input=True``) or ``r = tau / dt``
            (``decay_input=False``); the reset is to ``v_reset`` (options NIR has no field for are
            carried in the node's metadata by :func:`spikekit.export.to_nir`).

        Args:
            dt: the time step the graph is written for (NIR time constants are continuous).
            shape: the layer's per-sample feature shape.

        Returns:
            A ``nir.LIF`` node with parameters of shape ``shape``.

        Shape:
            Every array of the node has shape ``shape``.

        Example:
            >>> LIF(tau=4.0).to_nir(1.0, (2,)).tau.tolist()
            [4.0, 4.0]
        """
        import nir

        p = nir_values(self, shape)
        tau = nir_tau(p["beta"], dt, "LIF", "beta")
        return nir.LIF(
            tau=tau,
            r=np.ones(shape) if self.options.decay_input else tau / dt,
            v_leak=p["v_leak"],
            v_threshold=p["v_th"],
            v_reset=p["v_reset"],
        )

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> LIF:
        """A :class:`LIF` from a ``nir.LIF`` node for time step ``dt``.

        Args:
            node: the ``nir.LIF`` node. dt: the time step to run at (``beta = 1 - dt / tau``).
            **options: constructor options (``reset``, ``surrogate``...), e.g. from the node metadata.

        Returns:
            The neuron; an ``r`` other than ``1`` or ``tau / dt`` is an input gain the importer applies.

        Example:
            >>> import nir, numpy as np
            >>> node = nir.LIF(tau=np.full(3, 4.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
            >>> LIF.from_nir(node, dt=1.0).beta.item()
            0.75
        """
        tau = np.asarray(node.tau, dtype=np.float64)
        options.setdefault("decay_input", nir_decay_input(node.r, tau, dt))
        return cls(
            tau=nir_scalar(tau),
            dt=dt,
            v_th=nir_scalar(node.v_threshold),
            v_reset=nir_scalar(node.v_reset),
            v_leak=nir_scalar(node.v_leak),
            **options,
        )


# ---------------------------------------------------------------------------- NIR helpers
# The NIR mapping of a neuron lives with its class (DESIGN.md): ``to_nir`` / ``from_nir`` and
# ``nir_nodes`` (the NIR node types the class imports). ``nir`` is imported inside them only, so
# ``import spikekit`` stays torch + numpy; spikekit.export.nir walks models with them. These
# helpers are shared by the linear neurons (IF, LIF, CubaLIF, LI).


def nir_values(neuron: Neuron, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The neuron's parameters as float64 arrays broadcast to ``shape`` (one value per neuron).

    Args:
        neuron: any neuron module.
        shape: the per-sample feature shape of the layer (``[*features]``).

    Returns:
        ``{parameter name: ndarray of shape `shape`}``, with the constructor's exact numbers for
        fixed parameters (not their float32 rounding).
    """
    probe = torch.zeros((), dtype=torch.float64)
    p = neuron._cast(neuron.params(), probe)
    return {k: np.broadcast_to(v.detach().cpu().numpy(), shape).copy() for k, v in p._asdict().items()}


def nir_scalar(a: Any) -> float | Tensor:
    """A NIR parameter as a constructor value: a float when all neurons share it, else a tensor."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.size and bool(np.all(arr == arr.flat[0])):
        return float(arr.flat[0])
    return torch.from_numpy(arr.copy())


def nir_tau(decay: np.ndarray, dt: float, who: str, what: str) -> np.ndarray:
    """The time constant ``dt / (1 - decay)`` of forward Euler; refuses ``decay = 1`` (no leak)."""
    if bool(np.any(decay >= 1)):
        raise ValueError(
            f"{who}.to_nir: {what} = 1 (no leak) has no finite NIR time constant; "
            f"use IF (or LI with tau_syn=None) for a non-leaky neuron"
        )
    return dt / (1 - decay)


def nir_decay_input(r: Any, tau: np.ndarray, dt: float) -> bool:
    """``decay_input`` from a NIR resistance: ``r = 1`` is ``True``, ``r = tau / dt`` is ``False``.

    Any other ``r`` reads as ``True``; the importer scales the input by ``r`` (spikekit.export.nir).
    """
    r = np.asarray(r, dtype=np.float64)
    return not (np.allclose(r, tau / dt, rtol=1e-6, atol=0) and not np.allclose(r, 1.0, rtol=1e-6, atol=0))
