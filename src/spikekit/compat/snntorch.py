"""snntorch's neurons, surrogates and temporal losses, built as native spikekit objects.

``from spikekit.compat import snntorch as snn`` gives ``snn.Leaky``, ``snn.Synaptic``,
``snn.Lapicque`` and ``snn.RLeaky`` with snntorch's arguments, defaults and one-step calling
convention (``spk, mem = lif(x, mem)``), ``snn.surrogate.atan(alpha=2.0)`` etc. with
snntorch's parametrisation, and ``snn.functional`` losses where spikekit's same-named loss
differs. Every neuron is a subclass of a native neuron (``spk.LIF``, ``spk.CubaLIF``) that
only maps the arguments: it inherits the step function, so the fused kernels, ``.scan``,
``.step`` and ``spk.record`` apply unchanged. snntorch itself is never imported.

Kept on purpose (see ``docs/migration/snntorch.md``): no hidden state inside a module
(``init_hidden=True`` raises), spikes in the input's dtype (snntorch's are float32), a learnt
``beta`` reparametrised as ``sigmoid(w)`` instead of clamped.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from spikekit import losses as _losses
from spikekit import surrogate as _sg
from spikekit.decoding import first_spike_time
from spikekit.layers.recurrent import Recurrent, RecurrentState
from spikekit.neurons.alpha_lif import AlphaLIF, AlphaLIFState
from spikekit.neurons.cuba_lif import CubaLIF, CubaLIFState
from spikekit.neurons.lif import LIF, LIFState

__all__ = ["Leaky", "Synaptic", "Lapicque", "Alpha", "RLeaky", "surrogate", "functional"]

_RESET = {"subtract": "soft", "zero": "hard", "none": "none"}


# ============================================================================ surrogates


def atan(alpha: float = 2.0) -> _sg.Surrogate:
    """snntorch ``surrogate.atan(alpha)``: gradient ``(alpha/2) / (1 + (pi/2 alpha x)^2)``.

    Returns:
        ``spikekit.surrogate.ATan(alpha)`` (same parametrisation).
    """
    return _sg.ATan(alpha=float(alpha))


def fast_sigmoid(slope: float = 25) -> _sg.Surrogate:
    """snntorch ``surrogate.fast_sigmoid(slope)``: gradient ``1 / (slope |x| + 1)^2``.

    Returns:
        ``spikekit.surrogate.FastSigmoid(alpha=slope)``.
    """
    return _sg.FastSigmoid(alpha=float(slope))


def sigmoid(slope: float = 25) -> _sg.Surrogate:
    """snntorch ``surrogate.sigmoid(slope)``: gradient ``slope s (1 - s)``, ``s = sigmoid(slope x)``.

    Returns:
        ``spikekit.surrogate.Sigmoid(alpha=slope)``.
    """
    return _sg.Sigmoid(alpha=float(slope))


def straight_through_estimator() -> _sg.Surrogate:
    """snntorch ``surrogate.straight_through_estimator()``: gradient 1 everywhere.

    Returns:
        ``spikekit.surrogate.StraightThrough()``.
    """
    return _sg.StraightThrough()


def _unsupported_surrogate(name: str, why: str) -> Any:
    def make(*args: Any, **kwargs: Any) -> _sg.Surrogate:
        raise NotImplementedError(
            f"spikekit.compat.snntorch.surrogate.{name}: {why}. Supported: atan, fast_sigmoid, "
            f"sigmoid, straight_through_estimator; or pass any spikekit.surrogate object (e.g. "
            f"spikekit.surrogate.Triangle(alpha)) as spike_grad."
        )

    make.__name__ = name
    return make


surrogate = SimpleNamespace(
    atan=atan,
    fast_sigmoid=fast_sigmoid,
    sigmoid=sigmoid,
    straight_through_estimator=straight_through_estimator,
    # snntorch 1.0's triangular gradient is +threshold below and -threshold above the
    # threshold (negative where the membrane is high): no spikekit surrogate has that shape.
    triangular=_unsupported_surrogate("triangular", "its gradient changes sign at the threshold"),
    heaviside=_unsupported_surrogate("heaviside", "its gradient is the spike itself, not a function of v"),
    spike_rate_escape=_unsupported_surrogate("spike_rate_escape", "not implemented in spikekit"),
    SSO=_unsupported_surrogate("SSO", "stochastic surrogates are not implemented in spikekit"),
    LSO=_unsupported_surrogate("LSO", "its forward pass is not a Heaviside step"),
    SFS=_unsupported_surrogate("SFS", "not implemented in spikekit"),
    custom_surrogate=_unsupported_surrogate(
        "custom_surrogate", "write a spikekit.surrogate.Surrogate subclass (primitive and grad)"
    ),
)
"""snntorch's ``snntorch.surrogate`` names, returning native spikekit surrogate objects."""


def _spike_grad(spike_grad: Any, who: str) -> _sg.Surrogate:
    if spike_grad is None:
        return _sg.ATan(alpha=2.0)  # snntorch's default, atan(alpha=2)
    if isinstance(spike_grad, (_sg.Surrogate, str)):
        return _sg.get(spike_grad)
    raise TypeError(
        f"{who}: spike_grad must be a spikekit surrogate; got {spike_grad!r}. Build it with "
        f"spikekit.compat.snntorch.surrogate (e.g. surrogate.fast_sigmoid(slope=25)) instead of "
        f"snntorch.surrogate: spikekit needs the surrogate's formula, not an autograd function."
    )


# ============================================================================ neurons


def _refuse(who: str, reset_mechanism: str = "subtract", **given: Any) -> None:
    """Raise for snntorch arguments spikekit cannot honour (never ignore them silently) and for an
    unknown ``reset_mechanism``."""
    if reset_mechanism not in _RESET:
        raise ValueError(
            f"{who}: reset_mechanism must be 'subtract', 'zero' or 'none', got {reset_mechanism!r}"
        )
    fixes = {
        "init_hidden": "spikekit keeps state out of modules: pass the state yourself "
        "(spk, mem = lif(x, mem)), run a whole sequence with lif.scan(xs), or use a native "
        "neuron inside `with spikekit.stepwise(net):` for step-by-step nn.Sequential models",
        "inhibition": "winner-take-all inhibition is not implemented in spikekit",
        "state_quant": "state quantisation is not implemented in spikekit",
        "output": "the one-step call always returns the state as well: spk, mem = lif(x, mem)",
        "surrogate_disable": "every spikekit spike carries a surrogate gradient; use "
        "surrogate.straight_through_estimator() or detach the output",
        "graded_spikes_factor": "scale the spikes after the neuron (spk * factor)",
        "learn_graded_spikes_factor": "learn a scale after the neuron (spk * nn.Parameter)",
    }
    for k, v in given.items():
        default = 1.0 if k == "graded_spikes_factor" else False
        bad = (float(v) != 1.0) if k == "graded_spikes_factor" else bool(v)
        if bad:
            raise NotImplementedError(f"{who}({k}={v!r}) is not supported (default {default}): {fixes[k]}.")


def _fresh(t: Tensor | None) -> bool:
    """``None`` or snntorch's ``init_leaky()`` placeholder (an empty tensor): start at rest."""
    return t is None or (isinstance(t, Tensor) and t.numel() == 0)


class _OneStep:
    """snntorch's call form on top of a native neuron; state goes in and out as arguments.

    The module's ``__call__`` is one step (snntorch's convention); ``.scan(xs)`` runs a whole
    ``[T, B, ...]`` sequence through the fused kernel and ``.step(x, state)`` takes the native
    state. Inside ``spikekit.stepwise`` the compat call refuses, since its state is explicit.
    """

    # the generated signature of the native parent would hide snntorch's arguments
    __signature__ = None
    _stream: Any

    def _no_stream(self) -> None:
        if self._stream is not None:
            raise RuntimeError(
                f"{type(self).__name__} takes its state as an argument (snntorch's call form) and "
                f"cannot run inside spikekit.stepwise; use the native neuron there"
            )


class Leaky(_OneStep, LIF):
    """snntorch ``Leaky``: first-order LIF with snntorch's arguments and defaults.

    Built as ``spk.LIF(beta=beta, v_th=threshold, decay_input=False, reset=..., reset_delay=
    reset_delay, detach_reset=reset_delay)`` (snntorch detaches its delayed reset and keeps the
    gradient of the immediate one).

    Math:
        ``mem' = beta mem + x - r threshold`` (``"subtract"``), ``r`` the (detached) spike of the
        previous membrane; ``spk = H(mem' - threshold)``. See :func:`spikekit.neurons.lif_step`.

    Args:
        beta: membrane decay in [0, 1] (scalar or per-neuron tensor).
        threshold: firing threshold.
        spike_grad: a spikekit surrogate (e.g. ``surrogate.atan(2.0)``, the default).
        learn_beta, learn_threshold: learn ``beta`` (as ``sigmoid(w)``) and ``threshold``.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        reset_delay: apply the reset at the next step (snntorch's default ``True``).
        init_hidden, inhibition, state_quant, output, surrogate_disable, graded_spikes_factor, learn_graded_spikes_factor: only their defaults are accepted.

    Returns:
        ``lif(x, mem=None)`` returns ``(spk, mem)``.

    Shape:
        ``x``: ``[B, *features]``; ``spk`` and ``mem``: same. ``lif.scan(xs)``: ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> lif = Leaky(beta=0.5)
        >>> mem = lif.init_leaky()
        >>> spk, mem = lif(torch.tensor([[1.5]]), mem)
        >>> spk.item(), mem.item()
        (1.0, 1.5)
    """

    def __init__(
        self,
        beta: float | Tensor,
        threshold: float | Tensor = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
    ) -> None:
        who = type(self).__name__
        _refuse(
            who,
            reset_mechanism,
            init_hidden=init_hidden,
            inhibition=inhibition,
            state_quant=state_quant,
            output=output,
            surrogate_disable=surrogate_disable,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        learn = (("beta",) if learn_beta else ()) + (("v_th",) if learn_threshold else ())
        super().__init__(
            beta=beta,
            v_th=threshold,
            v_reset=0.0,
            v_leak=0.0,
            decay_input=False,
            reset=_RESET[reset_mechanism],
            reset_delay=bool(reset_delay),
            detach_reset=bool(reset_delay),
            surrogate=_spike_grad(spike_grad, who),
            learn=learn,
        )

    def init_leaky(self) -> Tensor:
        """snntorch's placeholder initial membrane: an empty tensor, read as "at rest"."""
        return torch.zeros(0)

    def forward(self, x: Tensor, mem: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """One step: ``(spk, mem)`` from input ``x`` ``[B, *features]`` and the previous ``mem``."""
        self._no_stream()
        z, s = self.step(x, None if _fresh(mem) else LIFState(mem))
        return z, s.v


class Synaptic(_OneStep, CubaLIF):
    """snntorch ``Synaptic``: LIF driven by an exponentially decaying synaptic current.

    Built as ``spk.CubaLIF(beta=beta, beta_syn=alpha, v_th=threshold, decay_input=False, ...)``.
    snntorch's ``syn`` is the current *including* this step's input (``alpha syn + x``); our
    state carries ``i = alpha syn`` into the next step, so the call converts between the two.

    Math:
        ``syn' = alpha syn + x``; ``mem' = beta mem + syn' - r threshold``; ``spk = H(mem' - threshold)``.

    Args:
        alpha: synaptic current decay in [0, 1]. beta: membrane decay in [0, 1].
        learn_alpha: learn ``alpha`` (as ``sigmoid(w)``). Other arguments: see :class:`Leaky`.
        reset_mechanism: ``"zero"`` needs ``reset_delay=False`` (snntorch's delayed zero reset
            also discards this step's input, which no native neuron does).

    Returns:
        ``syn_neuron(x, syn=None, mem=None)`` returns ``(spk, syn, mem)``.

    Shape:
        ``x``, ``syn``, ``mem``: ``[B, *features]``.
    """

    def __init__(
        self,
        alpha: float | Tensor,
        beta: float | Tensor,
        threshold: float | Tensor = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        reset_delay: bool = True,
    ) -> None:
        who = type(self).__name__
        _refuse(
            who,
            reset_mechanism,
            init_hidden=init_hidden,
            inhibition=inhibition,
            state_quant=state_quant,
            output=output,
            surrogate_disable=surrogate_disable,
        )
        if reset_mechanism == "zero" and reset_delay:
            raise NotImplementedError(
                f"{who}(reset_mechanism='zero', reset_delay=True): snntorch zeroes the whole next "
                f"membrane (including that step's input) after a spike, which no spikekit neuron "
                f"does. Use reset_delay=False (an exact match), or the native "
                f"spk.CubaLIF(reset='hard', reset_delay=True, decay_input=False), which resets only "
                f"the carried membrane"
            )
        learn = (
            (("beta_syn",) if learn_alpha else ())
            + (("beta",) if learn_beta else ())
            + (("v_th",) if learn_threshold else ())
        )
        super().__init__(
            beta=beta,
            beta_syn=alpha,
            v_th=threshold,
            v_reset=0.0,
            v_leak=0.0,
            decay_input=False,
            reset=_RESET[reset_mechanism],
            reset_delay=bool(reset_delay),
            detach_reset=bool(reset_delay),
            surrogate=_spike_grad(spike_grad, who),
            learn=learn,
        )

    def init_synaptic(self) -> tuple[Tensor, Tensor]:
        """snntorch's placeholder initial ``(syn, mem)``: empty tensors, read as "at rest"."""
        return torch.zeros(0), torch.zeros(0)

    def forward(  # type: ignore[override]
        self, x: Tensor, syn: Tensor | None = None, mem: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step: ``(spk, syn, mem)``."""
        self._no_stream()
        if _fresh(syn) != _fresh(mem):
            raise ValueError(f"{type(self).__name__}: pass both syn and mem, or neither")
        if _fresh(mem):
            state = self.initial_state(x)
        else:
            alpha = self._cast(self.params(), x).beta_syn
            state = CubaLIFState(mem, alpha * syn)
        z, s = self.step(x, state)
        # snntorch reports the current after this step's input, before its decay: i + x
        return z, state.i + x, s.v


class Lapicque(_OneStep, LIF):
    """snntorch ``Lapicque``: the RC-circuit LIF, for ``R = 1`` (the default when only ``beta`` is given).

    snntorch integrates ``mem' = (1 - dt/(R C)) mem + (dt/C) x``; its ``beta`` only sets ``C``
    (``C = dt / (R ln(1/beta))``). With ``R = 1`` the input gain is ``1 - decay``, which is
    ``spk.LIF(beta=1 - dt/C, decay_input=True, reset="soft", reset_delay=True,
    detach_reset=True)``.

    Args:
        beta, R, C: as snntorch (give ``beta``, or ``R = 1`` and ``C``). time_step: ``dt``.
        threshold, spike_grad, learn_threshold: see :class:`Leaky`.
        reset_mechanism: ``"subtract"`` or ``"none"`` (snntorch's ``"zero"`` also discards the
            step's input, which no native neuron does).
        learn_beta: refused: snntorch's Lapicque update does not use ``beta``.

    Returns:
        ``lif(x, mem=None)`` returns ``(spk, mem)``.

    Shape:
        ``x``, ``mem``: ``[B, *features]``.
    """

    def __init__(
        self,
        beta: float | Tensor | bool = False,
        R: float | bool = False,
        C: float | bool = False,
        time_step: float = 1,
        threshold: float | Tensor = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
    ) -> None:
        who = type(self).__name__
        _refuse(
            who,
            reset_mechanism,
            init_hidden=init_hidden,
            inhibition=inhibition,
            state_quant=state_quant,
            output=output,
            surrogate_disable=surrogate_disable,
        )
        if learn_beta:
            raise NotImplementedError(
                f"{who}(learn_beta=True): snntorch's Lapicque update uses R and C, not beta, so a "
                f"learnt beta receives no gradient there; use Leaky(learn_beta=True) or "
                f"spk.LIF(learn='beta', decay_input=True)"
            )
        if reset_mechanism not in ("subtract", "none"):
            raise NotImplementedError(
                f"{who}(reset_mechanism={reset_mechanism!r}): only 'subtract' and 'none' are supported; "
                f"snntorch's 'zero' also discards the next step's input, which no spikekit neuron does"
            )
        dt = float(time_step)
        has_beta = beta is not False and beta is not None
        if has_beta:
            if C and not R:
                raise NotImplementedError(
                    f"{who}(beta, C): then R = dt / (C ln(1/beta)) != 1 in general, and an input gain "
                    f"R (1 - decay) has no native neuron; give beta alone (R = 1)"
                )
            R = 1.0 if not R else R
            b = torch.as_tensor(beta, dtype=torch.float64)
            C = dt / (float(R) * torch.log(1 / b))
        elif not (R and C):
            raise ValueError(f"{who}: give beta, or both R and C")
        if float(R) != 1.0:
            raise NotImplementedError(
                f"{who}(R={R}): snntorch scales the input by dt/C = R (1 - decay); spikekit's input "
                f"gain is 1 - decay (decay_input=True) or 1, so only R = 1 maps exactly. Rescale the "
                f"input by R, or use spk.LIF(tau=R*C, dt=time_step, decay_input=True) on R x"
            )
        decay = 1 - dt / (float(R) * torch.as_tensor(C, dtype=torch.float64))
        super().__init__(
            beta=decay.item() if decay.ndim == 0 else decay,
            v_th=threshold,
            v_reset=0.0,
            v_leak=0.0,
            decay_input=True,
            reset=_RESET[reset_mechanism],
            reset_delay=True,
            detach_reset=True,
            surrogate=_spike_grad(spike_grad, who),
            learn=("v_th",) if learn_threshold else (),
        )

    def init_lapicque(self) -> Tensor:
        """snntorch's placeholder initial membrane: an empty tensor, read as "at rest"."""
        return torch.zeros(0)

    def forward(self, x: Tensor, mem: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """One step: ``(spk, mem)``."""
        self._no_stream()
        z, s = self.step(x, None if _fresh(mem) else LIFState(mem))
        return z, s.v


class Alpha(_OneStep, AlphaLIF):
    """snntorch ``Alpha``: membrane from an excitatory and an inhibitory exponential current.

    Built as ``spk.AlphaLIF(beta_exc=alpha, beta_inh=beta, v_th=threshold, reset=...,
    detach_reset=True)``; the reset is always one step late and detached, as snntorch's.

    Math:
        ``e' = alpha e + x``; ``n' = beta n - x``; ``mem' = c (e' + n')`` with
        ``c = log(alpha) / (log(beta) - log(alpha)) + 1``; reset by the previous step's spike
        (see :func:`spikekit.neurons.alpha_lif_step`); ``spk = H(mem' - threshold)``.

    Args:
        alpha: excitatory current decay, in (0, 1) and greater than ``beta``.
        beta: inhibitory current decay, in (0, 1).
        threshold, spike_grad, learn_threshold: see :class:`Leaky`.
        learn_alpha, learn_beta: learn the decays (as ``sigmoid(w)``; snntorch clamps).
        reset_mechanism: ``"zero"`` (snntorch's default for Alpha), ``"subtract"`` or ``"none"``.
        init_hidden, inhibition, state_quant, output, surrogate_disable: only their defaults.

    Returns:
        ``alpha_neuron(x, syn_exc=None, syn_inh=None, mem=None)`` returns
        ``(spk, syn_exc, syn_inh, mem)``.

    Shape:
        ``x`` and every state: ``[B, *features]``. ``.scan(xs)``: ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> neuron = Alpha(alpha=0.9, beta=0.8)
        >>> spk, syn_exc, syn_inh, mem = neuron(torch.ones(1, 2))
        >>> syn_exc.tolist(), syn_inh.tolist(), mem.tolist()
        ([[1.0, 1.0]], [[-1.0, -1.0]], [[0.0, 0.0]])
    """

    def __init__(
        self,
        alpha: float | Tensor,
        beta: float | Tensor,
        threshold: float | Tensor = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "zero",
        state_quant: Any = False,
        output: bool = False,
    ) -> None:
        who = type(self).__name__
        _refuse(
            who,
            reset_mechanism,
            init_hidden=init_hidden,
            inhibition=inhibition,
            state_quant=state_quant,
            output=output,
            surrogate_disable=surrogate_disable,
        )
        learn = (
            (("beta_exc",) if learn_alpha else ())
            + (("beta_inh",) if learn_beta else ())
            + (("v_th",) if learn_threshold else ())
        )
        super().__init__(
            beta_exc=alpha,
            beta_inh=beta,
            v_th=threshold,
            reset=_RESET[reset_mechanism],
            detach_reset=True,
            surrogate=_spike_grad(spike_grad, who),
            learn=learn,
        )

    def init_alpha(self) -> tuple[Tensor, Tensor, Tensor]:
        """snntorch's placeholder initial ``(syn_exc, syn_inh, mem)``: empty tensors, read as "at rest"."""
        return torch.zeros(0), torch.zeros(0), torch.zeros(0)

    reset_mem = init_alpha

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        syn_exc: Tensor | None = None,
        syn_inh: Tensor | None = None,
        mem: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One step: ``(spk, syn_exc, syn_inh, mem)``."""
        self._no_stream()
        given = [not _fresh(t) for t in (syn_exc, syn_inh, mem)]
        if any(given) and not all(given):
            raise ValueError(f"{type(self).__name__}: pass syn_exc, syn_inh and mem together, or none")
        state = AlphaLIFState(mem, syn_exc, syn_inh) if all(given) else None
        z, s = self.step(x, state)
        return z, s.i_exc, s.i_inh, s.v


class _OneToOne(nn.Module):
    """snntorch's one-to-one recurrence ``spk * V`` (``V`` scalar or per neuron)."""

    def __init__(self, V: float | Tensor, learn: bool) -> None:
        super().__init__()
        v = torch.as_tensor(V, dtype=torch.get_default_dtype()).detach().clone()
        if learn:
            self.V = nn.Parameter(v)
        else:
            self.register_buffer("V", v)

    def forward(self, z: Tensor) -> Tensor:
        return z * self.V.to(z.dtype)


class RLeakyState(NamedTuple):
    """snntorch's RLeaky state: last spikes and membrane, ``[B, *features]``."""

    spk: Tensor
    mem: Tensor


class RLeaky(Recurrent):
    """snntorch ``RLeaky``: a :class:`Leaky` whose input also receives its own previous spikes.

    Built as ``spk.layers.Recurrent(Leaky(...), recurrent)`` where ``recurrent`` is
    ``nn.Linear(linear_features, linear_features)``, a same-padded ``nn.Conv2d`` or the
    one-to-one ``spk * V`` (``all_to_all=False``); the attribute is ``recurrent`` as in snntorch,
    so its ``state_dict`` entries carry over.

    Math:
        ``mem' = beta mem + x + recurrent(spk) - r threshold``; ``spk' = H(mem' - threshold)``.

    Args:
        beta, threshold, spike_grad, learn_beta, learn_threshold, reset_mechanism, reset_delay:
            see :class:`Leaky`.
        V: one-to-one recurrent weight (``all_to_all=False``).
        all_to_all: dense (``linear_features``) or convolutional (``conv2d_channels``,
            ``kernel_size``) recurrence; ``False`` for one-to-one.
        learn_recurrent: learn the recurrent weights (default ``True`` as in snntorch).

    Returns:
        ``rlif(x, spk=None, mem=None)`` returns ``(spk, mem)``.

    Shape:
        ``x``, ``spk``, ``mem``: ``[B, *features]``; ``.scan(xs)``: ``[T, B, *features]``.
    """

    __signature__ = None

    def __init__(
        self,
        beta: float | Tensor,
        V: float | Tensor = 1.0,
        all_to_all: bool = True,
        linear_features: int | None = None,
        conv2d_channels: int | None = None,
        kernel_size: int | tuple[int, int] | None = None,
        threshold: float | Tensor = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        learn_recurrent: bool = True,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        reset_delay: bool = True,
    ) -> None:
        who = type(self).__name__
        if reset_mechanism == "zero" and reset_delay:
            # unlike Leaky's, RLeaky's delayed zero reset also discards the step's input
            raise NotImplementedError(
                f"{who}(reset_mechanism='zero', reset_delay=True): snntorch zeroes the whole next "
                f"membrane (including that step's input) after a spike, which no spikekit neuron "
                f"does. Use reset_delay=False (an exact match) or reset_mechanism='subtract'"
            )
        neuron = Leaky(
            beta,
            threshold,
            spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            reset_mechanism=reset_mechanism,
            state_quant=state_quant,
            output=output,
            reset_delay=reset_delay,
        )
        conv = conv2d_channels is not None or kernel_size is not None
        recurrent: nn.Module
        if not all_to_all:
            if linear_features or conv:
                raise TypeError(
                    f"{who}: with all_to_all=False give V, not linear_features/conv2d_channels/kernel_size"
                )
            recurrent = _OneToOne(V, learn_recurrent)
        elif linear_features:
            if conv:
                raise TypeError(f"{who}: give linear_features or (conv2d_channels, kernel_size), not both")
            recurrent = nn.Linear(linear_features, linear_features)
        elif conv2d_channels and kernel_size:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            recurrent = nn.Conv2d(conv2d_channels, conv2d_channels, k, padding=(k[0] // 2, k[1] // 2))
        else:
            raise TypeError(
                f"{who}: all_to_all=True needs linear_features, or both conv2d_channels and kernel_size"
            )
        if not learn_recurrent:
            for p in recurrent.parameters():
                p.requires_grad_(False)
        super().__init__(neuron, recurrent)

    def init_rleaky(self) -> tuple[Tensor, Tensor]:
        """snntorch's placeholder initial ``(spk, mem)``: empty tensors, read as "at rest"."""
        return torch.zeros(0), torch.zeros(0)

    def forward(  # type: ignore[override]
        self, x: Tensor, spk: Tensor | None = None, mem: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step: ``(spk, mem)``."""
        if _fresh(spk) != _fresh(mem):
            raise ValueError(f"{type(self).__name__}: pass both spk and mem, or neither")
        state = None if _fresh(mem) else RecurrentState(LIFState(mem), spk.to(x.dtype))
        z, s = self.step(x, state)
        return z, s.neuron.v


# ============================================================================ losses


class mse_temporal_loss:
    """snntorch ``functional.mse_temporal_loss`` (single spike), with snntorch's target rule.

    Differs from :class:`spikekit.losses.mse_temporal_loss` in two conventions, kept here:

    * label targets: when ``on_target > off_target`` snntorch takes ``max(off_target, 0)`` for
      the other classes, so its default ``off_target=-1`` means ``t = 0``, not the last step;
    * reduction: snntorch's ``nn.MSELoss`` reduces over batch *and* classes (``"sum"`` adds
      ``B C`` terms, ``"none"`` returns ``[B, C]``); spikekit's averages over classes first.

    A minimal own implementation (not a wrapper): spikekit's loss reduces over classes
    before its ``reduction`` applies, so ``"none"``/``"sum"`` cannot be recovered from it. The
    spike times come from :func:`spikekit.decoding.first_spike_time`.

    Args:
        target_is_time: targets are spike times ``[B, C]`` instead of labels.
        on_target, off_target: target times (negative: counted from the end).
        tolerance: distance (in steps) below which a time is not penalised.
        multi_spike: refused (snntorch 1.0's multi-spike times lose spikes; see the message).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: refused (snntorch 1.0 broadcasts ``[B, C]`` losses against ``[B]`` weights).

    Returns:
        ``loss_fn(spk_rec, targets)``: a scalar, or ``[B, C]`` with ``reduction="none"``.

    Shape:
        ``spk_rec``: ``[T, B, C]``; targets ``[B]`` labels or ``[B, C]`` times.
    """

    def __init__(
        self,
        target_is_time: bool = False,
        on_target: int = 0,
        off_target: int = -1,
        tolerance: float = 0,
        multi_spike: bool = False,
        reduction: str = "mean",
        weight: Tensor | None = None,
    ) -> None:
        if multi_spike:
            # snntorch 1.0 removes each found spike by zeroing that whole time step for every
            # sample and neuron (it indexes the time axis with the [B, C] times), so a neuron
            # spiking at t = 1, 2 next to one whose first spike is at 2 gets its second spike at
            # "none": matching it would copy the bug, and a correct version would silently differ.
            raise NotImplementedError(
                "mse_temporal_loss(multi_spike=True) is not provided: snntorch 1.0's multi-spike "
                "times zero a whole time step for every neuron once any neuron's spike is found "
                "there, so later spikes are lost; use the first spike (multi_spike=False) or "
                "spikekit.decoding.first_spike_time on your own masked spikes"
            )
        if weight is not None:
            raise NotImplementedError(
                "mse_temporal_loss(weight=...): snntorch 1.0 multiplies [B, C] losses by [B] weights "
                "(an error unless B == C); use spikekit.losses.mse_temporal_loss(weight=...), which "
                "weights each sample by its label's weight"
            )
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"mse_temporal_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
            )
        self.target_is_time = bool(target_is_time)
        self.on_target, self.off_target = on_target, off_target
        self.tolerance = tolerance
        self.reduction = reduction
        self.__name__ = "mse_temporal_loss"

    def __call__(self, spk_rec: Tensor, targets: Tensor) -> Tensor:
        T, B, C = spk_rec.shape
        zs = spk_rec if spk_rec.is_floating_point() else spk_rec.float()
        if self.target_is_time:
            tau = torch.as_tensor(targets).to(zs).expand(B, C)
        else:
            on, off = self.on_target, self.off_target
            if on > off:  # snntorch: max(one_hot * on, off)
                off = max(off, 0)
            hot = nn.functional.one_hot(torch.as_tensor(targets).long(), C).bool()
            tau = torch.where(hot, torch.full_like(zs[0], float(on)), torch.full_like(zs[0], float(off)))
        tau = torch.where(tau < 0, tau + T, tau)
        t = first_spike_time(zs, no_spike=T - 1)
        if self.tolerance:
            t = _losses._Tolerance.apply(t, tau, float(self.tolerance))
        err = ((t - tau) / T).square()
        if self.reduction == "mean":
            return err.mean()
        return err.sum() if self.reduction == "sum" else err


class ce_temporal_loss(_losses.ce_temporal_loss):
    """snntorch ``functional.ce_temporal_loss``: spikekit's, with torch's weighted mean.

    With ``weight`` and ``reduction="mean"`` snntorch (``nn.CrossEntropyLoss``) divides by the
    sum of the samples' weights; spikekit's plain mean divides by ``B``. Otherwise identical.

    Args:
        inverse: ``"negate"`` or ``"reciprocal"``. reduction, weight: as snntorch.

    Returns:
        ``loss_fn(spk_rec, targets)``: scalar, or ``[B]`` with ``reduction="none"``.

    Shape:
        ``spk_rec``: ``[T, B, C]``; targets ``[B]`` labels.
    """

    def __init__(
        self, inverse: str = "negate", reduction: str = "mean", weight: Tensor | None = None
    ) -> None:
        self._weighted_mean = weight is not None and reduction == "mean"
        super().__init__(
            inverse=inverse, reduction="sum" if self._weighted_mean else reduction, weight=weight
        )

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        loss = super().__call__(outputs, targets)
        if self._weighted_mean:
            assert self.weight is not None
            loss = loss / self.weight.to(loss)[torch.as_tensor(targets).long()].sum()
        return loss


class mse_count_loss(_losses.mse_count_loss):
    """snntorch ``functional.mse_count_loss``: spikekit's, with snntorch's ``sum``/``none``.

    snntorch reduces its ``[B, C]`` squared count errors (divided by ``T``) over batch and
    classes: ``"sum"`` adds ``B C`` terms (spikekit: ``B`` class means) and ``"none"`` returns
    ``[B, C]`` (spikekit: ``[B]``); both are kept here. ``"mean"`` is the same. ``weight`` is refused (snntorch
    1.0 broadcasts it against ``[B, C]``, an error unless ``B == C``).

    Args:
        correct_rate, incorrect_rate, population_code, num_classes, reduction: as snntorch.

    Returns:
        ``loss_fn(spk_rec, targets)``: scalar, or ``[B, C]`` with ``reduction="none"``.

    Shape:
        ``spk_rec``: ``[T, B, N]``; targets ``[B]`` labels.
    """

    def __init__(
        self,
        correct_rate: float = 1,
        incorrect_rate: float = 0,
        population_code: bool = False,
        num_classes: int | bool = False,
        reduction: str = "mean",
        weight: Tensor | None = None,
    ) -> None:
        if weight is not None:
            raise NotImplementedError(
                "mse_count_loss(weight=...): snntorch 1.0 multiplies [B, C] losses by [B] weights "
                "(an error unless B == C); use spikekit.losses.mse_count_loss(weight=...)"
            )
        super().__init__(
            correct_rate=correct_rate,
            incorrect_rate=incorrect_rate,
            population_code=population_code,
            num_classes=num_classes or None,
            reduction="none",
        )
        self._snn_reduction = reduction
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"mse_count_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        err, _ = self.class_errors(outputs, targets)  # [B, C]: (count - target)^2 / T
        if self._snn_reduction == "none":
            return err
        return err.sum() if self._snn_reduction == "sum" else err.mean()


functional = SimpleNamespace(
    mse_temporal_loss=mse_temporal_loss,
    ce_temporal_loss=ce_temporal_loss,
    mse_count_loss=mse_count_loss,
    # the same as spikekit's (checked against snntorch in tests/test_compat_snntorch.py)
    ce_rate_loss=_losses.ce_rate_loss,
    ce_count_loss=_losses.ce_count_loss,
    mse_membrane_loss=_losses.mse_membrane_loss,
    ce_max_membrane_loss=_losses.ce_max_membrane_loss,
)
"""snntorch's ``snntorch.functional`` loss names (the ones spikekit has)."""
