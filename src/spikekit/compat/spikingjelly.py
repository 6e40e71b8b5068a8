"""spikingjelly's neurons and surrogates, built as native spikekit objects.

``from spikekit.compat.spikingjelly import neuron, surrogate, functional`` replaces
``from spikingjelly.activation_based import neuron, surrogate, functional``. The neurons
(``IFNode``, ``LIFNode``, ``ParametricLIFNode``, ``QIFNode``, ``EIFNode``, ``IzhikevichNode``)
take spikingjelly 2.0's arguments and defaults (surrogate ``Sigmoid(alpha=4)``, ``v_reset=None``
for a soft reset) and are subclasses of the native neurons that only map those arguments: they
inherit the step function, so the fused kernels, ``.scan``, ``.step`` and ``spk.record``
apply unchanged. The surrogate factories return native :mod:`spikekit.surrogate` objects with
spikingjelly's parametrisation. spikingjelly itself is never imported.

Calling convention (DESIGN property 3: no state inside modules):

* ``step_mode="m"``: ``node(x_seq)`` takes ``[T, B, *features]`` and returns the spikes, as in
  spikingjelly; every call starts from a fresh state (no ``functional.reset_net`` needed).
* ``step_mode="s"`` (spikingjelly's default): one step ``[B, *features]`` per call, which needs
  a place to keep the membrane: the call works only inside ``with spikekit.stepwise(net):``
  (``functional.reset_net(net)`` clears it there) and raises outside it, naming that fix.

Kept on purpose (see ``docs/migration/spikingjelly.md``): no ``node.v``/``node.v_seq`` after a
call (use ``spikekit.record``), ``backend`` picks nothing (spikekit picks its kernel from the
step function), a learnt ``ParametricLIFNode`` decay is stored as ``beta_logit = -w``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from torch import Tensor, nn

from spikekit import modes as _modes
from spikekit import surrogate as _sg
from spikekit.neurons.eif import EIF
from spikekit.neurons.if_ import IF
from spikekit.neurons.izhikevich import Izhikevich, IzhikevichState
from spikekit.neurons.lif import LIF
from spikekit.neurons.qif import QIF

__all__ = [
    "IFNode",
    "LIFNode",
    "ParametricLIFNode",
    "QIFNode",
    "EIFNode",
    "IzhikevichNode",
    "neuron",
    "surrogate",
    "functional",
]

# spikingjelly < 2.0 selected its CUDA implementation by name; the maths is the same in each,
# and spikekit chooses its own kernel from the step function, so these names are accepted.
_BACKENDS = ("torch", "cupy", "triton")


# ============================================================================ surrogates


def _spiking_only(name: str, spiking: bool) -> None:
    if not spiking:
        raise NotImplementedError(
            f"spikekit.compat.spikingjelly.surrogate.{name}(spiking=False): a spikekit surrogate is "
            f"a formula, not a module: evaluate its smooth primitive with s.primitive(x), or relax "
            f"every neuron of a model with spikekit.neurons._base.replace_options(net, spiking=False)"
        )


def Sigmoid(alpha: float = 4.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.Sigmoid(alpha=4)``: gradient ``alpha s (1 - s)``, ``s = sigmoid(alpha x)``.

    Returns:
        ``spikekit.surrogate.Sigmoid(alpha)`` (same parametrisation, same default 4).
    """
    _spiking_only("Sigmoid", spiking)
    return _sg.Sigmoid(alpha=float(alpha))


def ATan(alpha: float = 2.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.ATan(alpha=2)``: gradient ``(alpha/2) / (1 + (pi/2 alpha x)^2)``.

    Returns:
        ``spikekit.surrogate.ATan(alpha)``.
    """
    _spiking_only("ATan", spiking)
    return _sg.ATan(alpha=float(alpha))


def PiecewiseQuadratic(alpha: float = 1.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.PiecewiseQuadratic(alpha=1)``: gradient ``max(0, alpha - alpha^2 |x|)``.

    Returns:
        ``spikekit.surrogate.PiecewiseQuadratic(alpha)``.
    """
    _spiking_only("PiecewiseQuadratic", spiking)
    return _sg.PiecewiseQuadratic(alpha=float(alpha))


def PiecewiseExp(alpha: float = 1.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.PiecewiseExp(alpha=1)``: gradient ``(alpha/2) exp(-alpha |x|)``.

    Returns:
        ``spikekit.surrogate.PiecewiseExp(alpha)``.
    """
    _spiking_only("PiecewiseExp", spiking)
    return _sg.PiecewiseExp(alpha=float(alpha))


def SoftSign(alpha: float = 2.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.SoftSign(alpha=2)``: gradient ``alpha / (2 (1 + |alpha x|)^2)``.

    Returns:
        ``spikekit.surrogate.SoftSign(alpha)``.
    """
    _spiking_only("SoftSign", spiking)
    return _sg.SoftSign(alpha=float(alpha))


def NonzeroSignLogAbs(alpha: float = 1.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.NonzeroSignLogAbs(alpha=1)``: gradient ``1 / (1/alpha + |x|)``.

    Returns:
        ``spikekit.surrogate.NonzeroSignLogAbs(alpha)``.
    """
    _spiking_only("NonzeroSignLogAbs", spiking)
    return _sg.NonzeroSignLogAbs(alpha=float(alpha))


def Erf(alpha: float = 2.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.Erf(alpha=2)``: gradient ``alpha/sqrt(pi) exp(-(alpha x)^2)``.

    Returns:
        ``spikekit.surrogate.Erf(alpha)``.
    """
    _spiking_only("Erf", spiking)
    return _sg.Erf(alpha=float(alpha))


def PiecewiseLeakyReLU(w: float = 1.0, c: float = 0.01, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.PiecewiseLeakyReLU(w=1, c=0.01)``: slope ``1/(2w)`` for ``|x| < w``, ``c`` outside.

    Returns:
        ``spikekit.surrogate.PiecewiseLeakyReLU(alpha=1/w, c=c)`` (spikekit's ``alpha`` is the
        inverse half-width).
    """
    _spiking_only("PiecewiseLeakyReLU", spiking)
    if not w > 0:
        raise ValueError(f"PiecewiseLeakyReLU: w must be > 0, got {w}")
    return _sg.PiecewiseLeakyReLU(alpha=1.0 / float(w), c=float(c))


def Rect(alpha: float = 1.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.Rect(alpha=1)``: gradient ``alpha`` for ``|x| < 1/(2 alpha)``, else 0.

    Returns:
        ``spikekit.surrogate.Boxcar(alpha)`` (the same window under spikekit's name).
    """
    _spiking_only("Rect", spiking)
    return _sg.Boxcar(alpha=float(alpha))


def SuperSpike(alpha: float = 1.0, spiking: bool = True) -> _sg.Surrogate:
    """spikingjelly ``surrogate.SuperSpike(alpha=1)``: gradient ``alpha / (1 + |x|)^2``.

    Only ``alpha = 1`` has a spikekit equivalent: spikingjelly's ``alpha`` scales the height,
    where ``spikekit.surrogate.FastSigmoid(alpha)`` narrows the width.

    Returns:
        ``spikekit.surrogate.FastSigmoid(alpha=1)``.

    Raises:
        NotImplementedError: for ``alpha != 1`` (the message names the alternatives).
    """
    _spiking_only("SuperSpike", spiking)
    if float(alpha) != 1.0:
        raise NotImplementedError(
            f"spikekit.compat.spikingjelly.surrogate.SuperSpike(alpha={alpha}): spikingjelly's alpha "
            f"scales the gradient's height, which no spikekit surrogate does. SuperSpike(alpha=1) is "
            f"spikekit.surrogate.FastSigmoid(alpha=1); scale the loss, or use FastSigmoid(alpha=a) "
            f"(alpha as the width, as snntorch's fast_sigmoid)"
        )
    return _sg.FastSigmoid(alpha=1.0)


def _unsupported(name: str) -> Callable[..., _sg.Surrogate]:
    def make(*args: Any, **kwargs: Any) -> _sg.Surrogate:
        raise NotImplementedError(
            f"spikekit.compat.spikingjelly.surrogate.{name} has no spikekit equivalent. Supported: "
            f"{', '.join(_SURROGATES)}; or pass any spikekit.surrogate object as surrogate_function"
        )

    make.__name__ = name
    return make


_SURROGATES: dict[str, Callable[..., _sg.Surrogate]] = {
    f.__name__: f
    for f in (
        Sigmoid,
        ATan,
        PiecewiseQuadratic,
        PiecewiseExp,
        SoftSign,
        NonzeroSignLogAbs,
        Erf,
        PiecewiseLeakyReLU,
        Rect,
        SuperSpike,
    )
}
_NO_EQUIVALENT = (
    "QPseudoSpike",
    "S2NN",
    "LeakyKReLU",
    "LogTailedReLU",
    "SquarewaveFourierSeries",
    "FakeNumericalGradient",
    "DeterministicPass",
    "PoissonPass",
    "MultiLevelSpikeCount",
)

surrogate = SimpleNamespace(**_SURROGATES, **{n: _unsupported(n) for n in _NO_EQUIVALENT})
"""spikingjelly's ``surrogate`` names, returning native spikekit surrogate objects."""


def _surrogate_function(s: Any, who: str) -> _sg.Surrogate:
    if isinstance(s, _sg.Surrogate):
        return s
    raise TypeError(
        f"{who}: surrogate_function must be a spikekit surrogate; got {s!r}. Build it with "
        f"spikekit.compat.spikingjelly.surrogate (e.g. surrogate.ATan(alpha=2.0)) instead of "
        f"spikingjelly's: spikekit needs the surrogate's formula to generate its kernels"
    )


# ============================================================================ neurons


def _reset(v_reset: float | None) -> dict[str, Any]:
    """spikingjelly's ``v_reset=None`` is a soft reset (subtract the threshold)."""
    return {"reset": "soft", "v_reset": 0.0} if v_reset is None else {"reset": "hard", "v_reset": v_reset}


class _Node:
    """spikingjelly's ``step_mode`` on top of a native neuron (a mixin placed before it).

    ``step_mode="m"`` is the native sequence call. ``step_mode="s"`` is one step per call,
    which carries state and therefore runs only inside ``spikekit.stepwise``.
    """

    # the generated signature of the native parent would hide spikingjelly's arguments
    __signature__ = None
    step_mode: str

    def _peer_options(self, step_mode: str, backend: str, store_v_seq: bool) -> None:
        who = type(self).__name__
        if step_mode not in ("s", "m"):
            raise ValueError(f"{who}: step_mode must be 's' or 'm', got {step_mode!r}")
        if backend not in _BACKENDS:
            raise ValueError(
                f"{who}: backend must be one of {_BACKENDS} (spikekit picks its own kernel: numba on "
                f"CPU, Triton on CUDA), got {backend!r}"
            )
        if store_v_seq:
            raise NotImplementedError(
                f"{who}(store_v_seq=True): spikekit keeps no state in modules, so there is no "
                f"node.v_seq. Record the membrane with `with spikekit.record(net) as rec: net(x_seq)` "
                f"and read rec[name].v ([T, B, *features])"
            )
        self.step_mode = step_mode

    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, *features]`` spikes (``step_mode="m"``); one step inside ``spikekit.stepwise``."""
        if self.step_mode == "s" and not self.streaming:  # type: ignore[attr-defined]
            raise RuntimeError(
                f"{type(self).__name__}(step_mode='s') takes one time step per call and keeps the "
                f"membrane between calls, which spikekit does only inside a scope: write "
                f"`with spikekit.stepwise(net): out = [net(x) for x in x_seq]` (clear the state with "
                f"functional.reset_net(net) there), or build with step_mode='m' (or call "
                f"functional.set_step_mode(net, 'm')) and pass the whole sequence [T, B, *features]"
            )
        return super().forward(x)  # type: ignore[misc]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step_mode={self.step_mode!r}"  # type: ignore[misc]


class IFNode(_Node, IF):
    """spikingjelly ``neuron.IFNode``: integrate-and-fire with spikingjelly's arguments and defaults.

    Built as ``spk.IF(v_th=v_threshold, v_reset=v_reset, reset="hard", detach_reset=...,
    surrogate=surrogate_function)``; ``v_reset=None`` is ``reset="soft"``.

    Math:
        ``h = v + x``; ``z = H(h - v_threshold)``; ``v' = h - z (h - v_reset)`` (hard) or
        ``v' = h - z v_threshold`` (soft). The membrane starts at ``v_reset`` (0 when soft).

    Args:
        v_threshold: firing threshold.
        v_reset: hard-reset potential, or ``None`` for a soft reset.
        surrogate_function: a spikekit surrogate (default ``surrogate.Sigmoid(alpha=4)``).
        detach_reset: stop the gradient through the spike in the reset.
        step_mode: ``"s"`` (one step per call, inside ``spikekit.stepwise``) or ``"m"``.
        backend: accepted for older spikingjelly code (``"torch"``, ``"cupy"``, ``"triton"``);
            spikekit picks its own kernel.
        store_v_seq: only ``False``; record the membrane with ``spikekit.record``.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``.

    Example:
        >>> import torch
        >>> node = IFNode(step_mode="m")
        >>> node(torch.full((3, 1, 1), 0.6)).flatten()
        tensor([0., 1., 0.])
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(
            v_th=v_threshold,
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            **_reset(v_reset),
        )
        self._peer_options(step_mode, backend, store_v_seq)


class LIFNode(_Node, LIF):
    """spikingjelly ``neuron.LIFNode``: leaky integrate-and-fire with spikingjelly's arguments.

    Built as ``spk.LIF(tau=tau, decay_input=decay_input, v_th=v_threshold, v_reset=v_reset,
    v_leak=v_reset, reset="hard", ...)``: spikingjelly leaks towards ``v_reset`` (towards 0 with a
    soft reset, ``v_reset=None``).

    Math:
        ``h = v + (x - (v - v_reset)) / tau`` (``decay_input``) or ``h = v - (v - v_reset) / tau + x``;
        ``z = H(h - v_threshold)``; reset as :class:`IFNode`. The membrane starts at ``v_reset``.

    Args:
        tau: membrane time constant (decay ``1 - 1/tau`` per step).
        decay_input: scale the input by ``1/tau``.
        v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq: see :class:`IFNode`.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        reset = _reset(v_reset)
        super().__init__(
            tau=tau,
            decay_input=bool(decay_input),
            v_th=v_threshold,
            v_leak=reset["v_reset"],
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            **reset,
        )
        self._peer_options(step_mode, backend, store_v_seq)


class ParametricLIFNode(_Node, LIF):
    """spikingjelly ``neuron.ParametricLIFNode`` (PLIF): a LIF whose decay is learnt.

    Built as ``spk.LIF(tau=init_tau, learn="tau", ...)`` with the mapping of :class:`LIFNode`.
    spikingjelly learns ``w`` with ``1/tau = sigmoid(w)``; spikekit learns ``beta = 1 - 1/tau =
    sigmoid(beta_logit)``, so ``beta_logit = -w`` and ``dL/dw = -dL/dbeta_logit`` (the same
    optimisation up to that sign).

    Args:
        init_tau: initial membrane time constant (> 1).
        decay_input, v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq: see :class:`LIFNode`.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``.
    """

    def __init__(
        self,
        init_tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        if not init_tau > 1:
            # a learnt decay lives strictly inside (0, 1): 1 - 1/tau needs tau > 1, as spikingjelly asserts
            raise ValueError(f"{type(self).__name__}: init_tau must be > 1, got {init_tau}")
        reset = _reset(v_reset)
        super().__init__(
            tau=init_tau,
            decay_input=bool(decay_input),
            v_th=v_threshold,
            v_leak=reset["v_reset"],
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            learn="tau",
            **reset,
        )
        self._peer_options(step_mode, backend, store_v_seq)


class QIFNode(_Node, QIF):
    """spikingjelly ``neuron.QIFNode``: quadratic integrate-and-fire with spikingjelly's arguments.

    Built as ``spk.QIF(tau=tau, v_c=v_c, a0=a0, v_th=v_threshold, v_rest=v_rest, v_reset=v_reset,
    reset="hard", ...)``; ``v_reset=None`` is ``reset="soft"``. As in spikingjelly the membrane
    starts at ``v_reset`` (0 when soft), where the native ``spk.QIF`` starts at ``v_rest``.

    Math:
        ``h = v + (x + a0 (v - v_rest)(v - v_c)) / tau``; fire and reset as :class:`IFNode`.

    Args:
        tau: time constant. v_c: critical voltage. a0: quadratic coefficient (> 0).
        v_threshold: threshold. v_rest: resting potential. v_reset: reset potential or ``None``.
        surrogate_function, detach_reset, step_mode, backend, store_v_seq: see :class:`IFNode`.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_c: float = 0.8,
        a0: float = 1.0,
        v_threshold: float = 1.0,
        v_rest: float = 0.0,
        v_reset: float | None = -0.1,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(
            tau=tau,
            v_c=v_c,
            a0=a0,
            v_th=v_threshold,
            v_rest=v_rest,
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            **_reset(v_reset),
        )
        self._peer_options(step_mode, backend, store_v_seq)

    def _rest(self, params: Any) -> Tensor:
        # spikingjelly's BaseNode starts every membrane at v_reset (0 with a soft reset)
        return params.v_reset if self.options.reset == "hard" else params.v_reset * 0


class EIFNode(_Node, EIF):
    """spikingjelly ``neuron.EIFNode``: exponential integrate-and-fire with spikingjelly's arguments.

    Built as ``spk.EIF(tau=tau, delta_T=delta_T, theta_rh=theta_rh, v_th=v_threshold,
    v_leak=v_rest, v_reset=v_reset, reset="hard", ...)``; ``v_reset=None`` is ``reset="soft"``.
    As in spikingjelly the membrane starts at ``v_reset`` (0 when soft).

    Math:
        ``h = v + (x - (v - v_rest) + delta_T exp((v - theta_rh) / delta_T)) / tau``; fire and
        reset as :class:`IFNode`.

    Args:
        tau: time constant. delta_T: sharpness (> 0). theta_rh: rheobase potential.
        v_threshold: threshold. v_rest: resting potential. v_reset: reset potential or ``None``.
        surrogate_function, detach_reset, step_mode, backend, store_v_seq: see :class:`IFNode`.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        delta_T: float = 1.0,
        theta_rh: float = 0.8,
        v_threshold: float = 1.0,
        v_rest: float = 0.0,
        v_reset: float | None = -0.1,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(
            tau=tau,
            delta_T=delta_T,
            theta_rh=theta_rh,
            v_th=v_threshold,
            v_leak=v_rest,
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            **_reset(v_reset),
        )
        self._peer_options(step_mode, backend, store_v_seq)

    def _rest(self, params: Any) -> Tensor:
        # spikingjelly's BaseNode starts every membrane at v_reset (0 with a soft reset)
        return params.v_reset if self.options.reset == "hard" else params.v_reset * 0


class IzhikevichNode(_Node, Izhikevich):
    """spikingjelly ``neuron.IzhikevichNode`` with spikingjelly's arguments and defaults.

    spikingjelly's ``tau dv = a0 (v - v_rest)(v - v_c) - w + x`` and ``tau_w dw = a (v - v_rest)
    - w`` (then ``w += b`` per spike) is the native polynomial Izhikevich neuron with
    ``k2 = a0``, ``k1 = -a0 (v_rest + v_c)``, ``k0 = a0 v_rest v_c + a v_rest``, recovery rate
    ``tau / tau_w``, coupling ``a``, jump ``b``, ``semi_implicit=1`` (spikingjelly updates ``w``
    from the charged membrane) and ``dt=1``. The native recovery is ``u = w + a v_rest``. As in
    spikingjelly the membrane starts at ``v_reset`` (0 when soft) and ``w`` at ``w_rest``.

    Args:
        tau: membrane time constant. v_c: critical voltage. a0: quadratic coefficient.
        v_threshold: threshold. v_reset: reset potential or ``None`` (soft reset).
        v_rest: resting potential. w_rest: initial adaptation current. tau_w: its time constant.
        a: subthreshold coupling. b: jump of ``w`` per spike.
        surrogate_function, detach_reset, step_mode, backend, store_v_seq: see :class:`IFNode`.

    Returns:
        ``node(x_seq)`` returns the spikes, shaped like the input.

    Shape:
        ``step_mode="m"``: ``[T, B, *features]``; ``step_mode="s"``: ``[B, *features]``; state
        ``IzhikevichState(v, u)`` with ``u = w + a v_rest``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_c: float = 0.8,
        a0: float = 1.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        v_rest: float = -0.1,
        w_rest: float = 0.0,
        tau_w: float = 2.0,
        a: float = 0.0,
        b: float = 0.0,
        surrogate_function: _sg.Surrogate = _sg.Sigmoid(alpha=4.0),  # noqa: B008 - frozen value
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        if not tau_w > 0:
            raise ValueError(f"{type(self).__name__}: tau_w must be > 0, got {tau_w}")
        super().__init__(
            tau=tau,
            k2=a0,
            k1=-a0 * (v_rest + v_c),
            k0=a0 * v_rest * v_c + a * v_rest,
            a=tau / tau_w,
            b=a,
            d=b,
            semi_implicit=1.0,
            v_th=v_threshold,
            v_rest=v_rest,
            detach_reset=bool(detach_reset),
            surrogate=_surrogate_function(surrogate_function, type(self).__name__),
            **_reset(v_reset),
        )
        self.w_rest = float(w_rest)
        self._peer_options(step_mode, backend, store_v_seq)

    def initial_state(self, x: Tensor) -> IzhikevichState:
        """spikingjelly's fresh state: ``v = v_reset`` (0 when soft), ``w = w_rest`` (``u = w_rest + a v_rest``)."""
        p = self._cast(self.params(), x)
        zero = x.detach() * 0
        v = zero + (p.v_reset if self.options.reset == "hard" else 0.0)
        return IzhikevichState(v, zero + (self.w_rest + p.b * p.v_rest))


neuron = SimpleNamespace(
    IFNode=IFNode,
    LIFNode=LIFNode,
    ParametricLIFNode=ParametricLIFNode,
    QIFNode=QIFNode,
    EIFNode=EIFNode,
    IzhikevichNode=IzhikevichNode,
)
"""spikingjelly's ``neuron`` names."""


# ============================================================================ functional


def reset_net(net: nn.Module) -> None:
    """spikingjelly ``functional.reset_net``: clear the carried state of every neuron in ``net``.

    Only inside ``with spikekit.stepwise(net):`` is any state carried; outside it a call starts
    from a fresh state, and this raises (a silent no-op would hide a loop run outside the scope).

    Args:
        net: the model.
    """
    _modes.reset(net)


def set_step_mode(net: nn.Module, step_mode: str) -> None:
    """spikingjelly ``functional.set_step_mode``: set ``step_mode`` on every compat node in ``net``.

    Native spikekit neurons have no step mode (a sequence outside ``stepwise``, one step
    inside) and are left as they are.

    Args:
        net: the model.
        step_mode: ``"s"`` or ``"m"``.
    """
    if step_mode not in ("s", "m"):
        raise ValueError(f"set_step_mode: step_mode must be 's' or 'm', got {step_mode!r}")
    for m in net.modules():
        if isinstance(m, _Node):
            m.step_mode = step_mode


functional = SimpleNamespace(reset_net=reset_net, set_step_mode=set_step_mode)
"""spikingjelly's ``functional.reset_net`` and ``set_step_mode``."""
