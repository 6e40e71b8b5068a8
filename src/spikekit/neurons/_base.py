"""What every neuron shares: options, the charge-fire-reset rule, and the module base class.

A neuron is written once, as a pure step function ``step(x, state, params, options)``
over small ``NamedTuple`` containers. Everything else is derived from that function:

* ``Neuron.step`` calls it once,
* ``Neuron.scan`` / ``Neuron.__call__`` run it over time through :func:`spikekit.kernels.scan`
  (the reference loop, or a registered fused kernel that is parity-tested against it),
* the functional API *is* the step function.

The only per-neuron code is the ``charge`` (sub-threshold dynamics); firing, the three reset
kinds, delayed reset, detached reset, graded output and the relaxed (smooth) mode live in
:func:`integrate` below, once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikekit import surrogate as _sg

__all__ = ["Options", "Neuron", "fire", "integrate", "leak", "RESETS"]

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


# ----------------------------------------------------------------------------- module base


def _is_tensor_value(v: Any) -> bool:
    return isinstance(v, Tensor) and v.ndim > 0


def decay_from(
    tau: float | Tensor | None, beta: float | Tensor | None, dt: float, default_tau: float, what: str
) -> float | Tensor:
    """Resolve a decay factor from ``tau`` (continuous time, with ``dt``) or ``beta`` directly.

    ``beta = 1 - dt / tau`` (forward Euler, as spikingjelly and norse integrate).
    """
    if tau is not None and beta is not None:
        raise ValueError(f"give either tau{what} or beta{what}, not both (got tau={tau}, beta={beta})")
    if beta is None:
        tau = default_tau if tau is None else tau
        t = torch.as_tensor(tau, dtype=torch.float64)
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ValueError(f"tau{what} must be finite and > 0, got {tau}")
        if bool((t < dt).any()):
            raise ValueError(
                f"tau{what} must be >= dt (beta = 1 - dt/tau would be negative), got tau={tau}, dt={dt}"
            )
        b = 1 - dt / t
        return b.to(torch.get_default_dtype()) if _is_tensor_value(tau) else float(b)
    b = torch.as_tensor(beta, dtype=torch.float64)
    if not bool(torch.isfinite(b).all()) or bool((b < 0).any()) or bool((b > 1).any()):
        raise ValueError(f"beta{what} must be in [0, 1], got {beta}")
    return beta.detach().clone().to(torch.get_default_dtype()) if _is_tensor_value(beta) else float(beta)


class _ParamSpec(NamedTuple):
    kind: str  # "decay" (sigmoid-reparametrised when learnt) or "real"
    learnable: bool


class Neuron(nn.Module):
    """Base class of all neuron modules. Subclasses set the class variables and call
    :meth:`_setup` from ``__init__``.

    Call forms (return types never change):

    * ``neuron(xs)`` on ``[T, B, *features]`` returns spikes ``[T, B, *features]`` and starts
      from a fresh state each call (so it drops into ``nn.Sequential``). Inside
      :func:`spikekit.stepwise` it takes one step ``[B, *features]`` and carries the state.
    * ``neuron.scan(xs, state=None)`` returns ``(outputs, final_state)``.
    * ``neuron.step(x, state=None)`` returns ``(output, new_state)``.
    """

    family: ClassVar[str]
    state_type: ClassVar[type]
    params_type: ClassVar[type]
    step_fn: ClassVar[Callable[..., tuple[Tensor, Any]]]
    learn_aliases: ClassVar[dict[str, str]] = {}
    ann_activation: ClassVar[Callable[[Tensor], Tensor]] = staticmethod(F.relu)

    options: Options
    ann: bool

    # ------------------------------------------------------------------ construction
    def _setup(
        self,
        *,
        values: dict[str, float | Tensor],
        kinds: dict[str, str],
        options: Options,
        shape: int | Iterable[int] | str | None,
        learn: str | Iterable[str],
        batch_first: bool,
        check_finite: bool,
    ) -> None:
        name = type(self).__name__
        if isinstance(learn, str):
            learn = (learn,)
        learnt: set[str] = set()
        for item in learn:
            key = self.learn_aliases.get(item)
            if key is None:
                raise ValueError(
                    f"{name}: cannot learn {item!r}; learnable: {', '.join(sorted(self.learn_aliases))}"
                )
            learnt.add(key)
        infer = isinstance(shape, str)
        if infer and shape != "infer":
            raise ValueError(f"{name}: shape must be None, 'infer' or a tuple of ints, got {shape!r}")
        if infer:
            shape = None
        if shape is not None:
            shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
            if any(s <= 0 for s in shape):
                raise ValueError(f"{name}: shape must have positive sizes, got {shape}")
        for k, v in values.items():
            if _is_tensor_value(v):
                vs = tuple(v.shape)
                if shape is None:
                    shape = vs
                elif vs != shape:
                    raise ValueError(f"{name}: {k} has shape {vs} but the neuron shape is {shape}")
        if infer and shape is not None:
            raise ValueError(
                f"{name}: shape='infer' needs scalar parameters, but one is a tensor of shape {shape}"
            )
        self.shape: tuple[int, ...] | None = shape
        # shape="infer": per-neuron parameters sized by the first input (eve-mli's State(layer)).
        self._pending: dict[str, Tensor] | None = {} if infer else None
        self.options = options
        self.batch_first = bool(batch_first)
        self.check_finite = bool(check_finite)
        self.ann = False
        self._stream: _Stream | None = None
        self._recorder: list[Any] | None = None
        self._specs: dict[str, _ParamSpec] = {}
        for k, v in values.items():
            kind = kinds.get(k, "real")
            t = torch.as_tensor(v, dtype=torch.get_default_dtype()).detach().clone()
            if shape is not None and t.ndim == 0:
                t = t.expand(shape).clone()
            if self._pending is not None:
                if k in learnt and kind == "decay" and not 0 < float(t) < 1:
                    raise ValueError(f"{name}: a learnable {k} must lie strictly inside (0, 1), got {v}")
                self._pending[k] = t
                if k in learnt:
                    self.register_parameter(
                        k + "_logit" if kind == "decay" else k, nn.UninitializedParameter()
                    )
                else:
                    self.register_buffer(k, nn.UninitializedBuffer())
            elif k in learnt:
                if kind == "decay":
                    if bool(((t <= 0) | (t >= 1)).any()):
                        raise ValueError(f"{name}: a learnable {k} must lie strictly inside (0, 1), got {v}")
                    self.register_parameter(k + "_logit", nn.Parameter(torch.logit(t)))
                else:
                    self.register_parameter(k, nn.Parameter(t))
            else:
                self.register_buffer(k, t)
            self._specs[k] = _ParamSpec(kind, k in learnt)

    def _materialize(self, features: tuple[int, ...], device: torch.device) -> None:
        """Size pending ``shape='infer'`` parameters by the input's feature dims (once)."""
        assert self._pending is not None
        with torch.no_grad():
            for k, t in self._pending.items():
                spec = self._specs[k]
                value = t.to(device).expand(features)
                if spec.learnable and spec.kind == "decay":
                    p = getattr(self, k + "_logit")
                    p.materialize(features, device=device, dtype=t.dtype)
                    p.copy_(torch.logit(value))
                else:
                    p = getattr(self, k)
                    p.materialize(features, device=device, dtype=t.dtype)
                    p.copy_(value)
        self.shape = tuple(features)
        self._pending = None

    def params(self) -> Any:
        """The neuron's parameters as its ``Params`` NamedTuple of tensors (after reparametrisation)."""
        if self._pending is not None:
            raise RuntimeError(
                f"{type(self).__name__}(shape='infer') has not seen an input yet; call it once on data "
                f"(a dry run) so it can size its per-neuron parameters"
            )
        vals = []
        for k in self.params_type._fields:
            spec = self._specs[k]
            if spec.learnable and spec.kind == "decay":
                vals.append(torch.sigmoid(getattr(self, k + "_logit")))
            else:
                vals.append(getattr(self, k))
        return self.params_type(*vals)

    def extra_repr(self) -> str:
        if self._pending is not None:
            return "shape='infer' (not yet sized)"
        parts = []
        for k in self.params_type._fields:
            t = self.params()._asdict()[k]
            val = f"{t.item():.4g}" if t.ndim == 0 else f"tensor{tuple(t.shape)}"
            parts.append(f"{k}={val}{' (learnt)' if self._specs[k].learnable else ''}")
        o = self.options
        if o.surrogate is not None:
            parts.append(f"surrogate={o.surrogate}")
            parts.append(f"reset={o.reset!r}")
            for f in ("detach_reset", "reset_delay"):
                if getattr(o, f):
                    parts.append(f"{f}=True")
            for f in ("spiking", "binary", "time_dependent"):
                if not getattr(o, f):
                    parts.append(f"{f}=False")
        if "decay_input" in self._options_used():
            parts.append(f"decay_input={o.decay_input}")
        if self.shape is not None:
            parts.append(f"shape={self.shape}")
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)

    def _options_used(self) -> tuple[str, ...]:
        return ("decay_input",)

    # ------------------------------------------------------------------ state
    @property
    def streaming(self) -> bool:
        """Whether the neuron is inside :func:`spikekit.stepwise` (a call is then one step)."""
        return self._stream is not None

    def _rest(self, params: Any) -> Tensor:
        """Membrane value of a fresh state (the leak/resting potential)."""
        return params.v_leak

    def initial_state(self, x: Tensor) -> Any:
        """A fresh state shaped like one time slice ``x`` (``[B, *features]``)."""
        p = self._cast(self.params(), x)
        fields = {f: torch.zeros_like(x) for f in self.state_type._fields}
        fields["v"] = fields["v"] + self._rest(p)
        return self.state_type(**fields)

    # ------------------------------------------------------------------ checks
    def _check_x(self, x: Tensor, what: str, lead: int) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: {what} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(
                f"{name}: {what} must be a floating-point tensor, got dtype {x.dtype}; "
                f"convert it with .float()"
            )
        layout = (
            ("[T, B, *features]" if not self.batch_first else "[B, T, *features]")
            if lead == 2
            else "[B, *features]"
        )
        if self._pending is not None:
            if x.ndim < lead:
                raise ValueError(f"{name}: {what} must have shape {layout}, got {tuple(x.shape)}")
            self._materialize(tuple(x.shape[lead:]), x.device)
        feat = self.shape or ()
        if x.ndim < lead + len(feat):
            raise ValueError(
                f"{name}: {what} must have shape {layout}"
                + (f" with features {feat}" if feat else "")
                + f", got {tuple(x.shape)} ({x.ndim} dims)"
            )
        # Size-1 parameter dims broadcast, e.g. shape=(C, 1, 1) is one value per conv channel.
        tail = tuple(x.shape[x.ndim - len(feat) :]) if feat else ()
        if any(f != 1 and f != t for f, t in zip(feat, tail, strict=True)):
            raise ValueError(
                f"{name}: {what} must end in the neuron shape {feat} ({layout}; size-1 dims broadcast), "
                f"got {tuple(x.shape)}"
            )
        if lead == 2 and x.shape[0] == 0:
            raise ValueError(f"{name}: {what} has no time steps (T = 0), shape {tuple(x.shape)}")
        ref = next(iter(self.buffers()), None)
        if ref is None:
            ref = next(iter(self.parameters()), None)
        if ref is not None and ref.device != x.device:
            raise ValueError(
                f"{name}: {what} is on {x.device} but the neuron's parameters are on {ref.device}; "
                f"move one with .to(device)"
            )
        if self.check_finite and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name}: {what} contains {bad} NaN/inf values (check_finite=True)")

    def _check_state(
        self, state: Any, x_slice_shape: torch.Size, x: Tensor, T_first_shape: torch.Size | None
    ) -> Any:
        name = type(self).__name__
        fields = self.state_type._fields
        if not isinstance(state, tuple) or len(state) != len(fields):
            raise TypeError(
                f"{name}: state must be a {self.state_type.__name__}{fields}, got {type(state).__name__}"
            )
        state = self.state_type(*state)
        for f, t in zip(fields, state, strict=True):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: state.{f} must be a tensor, got {type(t).__name__}")
            if t.shape != x_slice_shape:
                hint = ""
                if T_first_shape is not None and len(T_first_shape) >= 2:
                    swapped = (T_first_shape[0], *T_first_shape[2:])
                    if tuple(t.shape) == tuple(swapped) and not self.batch_first:
                        hint = "; the input looks batch-first: pass batch_first=True or transpose it"
                raise ValueError(
                    f"{name}: state.{f} has shape {tuple(t.shape)} but the input's time slice has "
                    f"shape {tuple(x_slice_shape)} (state is [B, *features]; batch size changes need "
                    f"a fresh state){hint}"
                )
            if t.dtype != x.dtype:
                raise TypeError(f"{name}: state.{f} has dtype {t.dtype} but the input has {x.dtype}")
            if t.device != x.device:
                raise ValueError(f"{name}: state.{f} is on {t.device} but the input is on {x.device}")
        return state

    @staticmethod
    def _cast(params: Any, x: Tensor) -> Any:
        return type(params)(*(p.to(x.dtype) for p in params))

    # ------------------------------------------------------------------ call forms
    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Advance one time step.

        Args:
            x: input ``[B, *features]``.
            state: the state from the previous step, or ``None`` for a fresh one.

        Returns:
            ``(output, new_state)``; the output has the shape of ``x``.
        """
        self._check_x(x, "x", lead=1)
        state = self.initial_state(x) if state is None else self._check_state(state, x.shape, x, None)
        if self.ann:
            return type(self).ann_activation(x), state
        p = self._cast(self.params(), x)
        return type(self).step_fn(x, state, p, self.options)

    def scan(self, xs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run over a whole sequence.

        Args:
            xs: input ``[T, B, *features]`` (``[B, T, *features]`` with ``batch_first``).
            state: initial state ``[B, *features]`` per field, or ``None`` for a fresh one.

        Returns:
            ``(outputs, final_state)`` with outputs shaped like ``xs``.
        """
        from spikekit import kernels

        self._check_x(xs, "xs", lead=2)
        orig_shape = xs.shape
        if self.batch_first:
            xs = xs.transpose(0, 1)
        state = (
            self.initial_state(xs[0])
            if state is None
            else self._check_state(state, xs.shape[1:], xs, orig_shape)
        )
        if self.ann:
            out = type(self).ann_activation(xs)
        else:
            p = self._cast(self.params(), xs)
            if self._recorder is not None:
                out, states = kernels.scan_trace(type(self).step_fn, xs, state, p, self.options)
                self._recorder.append(states)
                state = type(state)(*(s[-1] for s in states))
            else:
                out, state = kernels.scan(self.family, type(self).step_fn, xs, state, p, self.options)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, state

    def forward(self, xs: Tensor) -> Tensor:
        """Outputs for a whole sequence from a fresh state (one step inside ``stepwise``)."""
        if self._stream is not None:
            out, new_state = self.step(xs, self._stream.state)
            self._stream.state = new_state
            if self._recorder is not None:
                self._recorder.append(type(new_state)(*(s.unsqueeze(0) for s in new_state)))
            return out
        return self.scan(xs)[0]

    def __getstate__(self) -> dict[str, Any]:
        # Transient scopes (stepwise state, recorder) never travel with a pickled/copied model.
        d = self.__dict__.copy()
        d["_stream"] = None
        d["_recorder"] = None
        return d


class _Stream:
    """Holder for a neuron's state while inside :func:`spikekit.stepwise`."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None


def options_from(
    *,
    surrogate: str | _sg.Surrogate | None,
    reset: str,
    detach_reset: bool,
    reset_delay: bool,
    decay_input: bool,
    binary: bool,
    time_dependent: bool,
    spiking: bool = True,
) -> Options:
    """Build :class:`Options`, resolving a surrogate name."""
    return Options(
        surrogate=None if surrogate is None else _sg.get(surrogate),
        reset=reset,
        detach_reset=detach_reset,
        reset_delay=reset_delay,
        decay_input=decay_input,
        spiking=spiking,
        binary=binary,
        time_dependent=time_dependent,
    )


def check_threshold(v_th: float | Tensor, v_reset: float | Tensor, reset: str, who: str) -> None:
    """``v_th`` finite, and above ``v_reset`` for a hard reset (else the neuron fires forever)."""
    th = torch.as_tensor(v_th, dtype=torch.float64)
    vr = torch.as_tensor(v_reset, dtype=torch.float64)
    if not bool(torch.isfinite(th).all()) or not bool(torch.isfinite(vr).all()):
        raise ValueError(f"{who}: v_th and v_reset must be finite, got v_th={v_th}, v_reset={v_reset}")
    if reset == "hard" and bool((th <= vr).any()):
        raise ValueError(
            f"{who}: with reset='hard', v_th must be > v_reset (else it fires every step), "
            f"got v_th={v_th}, v_reset={v_reset}"
        )


def check_dt(dt: float, who: str) -> None:
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"{who}: dt must be a finite number > 0, got {dt!r}")


def replace_options(module: nn.Module, **changes: Any) -> None:
    """Set option fields on every neuron in ``module`` (e.g. ``spiking=False``)."""
    for m in module.modules():
        if isinstance(m, Neuron):
            m.options = dataclasses.replace(m.options, **changes)
