"""The module base class every neuron shares, and the declarations a neuron is built from.

A neuron is written once, as a pure step function ``step(x, state, params, options)``
over small ``NamedTuple`` containers (its sub-threshold ``charge`` goes through the one
charge-fire-reset rule in :mod:`spikekit.neurons._math`). Everything else is derived:

* ``Neuron.step`` calls it once;
* ``Neuron.scan`` / ``Neuron.__call__`` run it over time through :func:`spikekit.kernels.scan`
  (the reference loop, or the fused kernel generated from that same step function);
* the functional API *is* the step function;
* the constructor, ``learn=`` names, reparametrisation and ``repr`` come from the
  :class:`Param` declarations of the class, so a neuron file declares each parameter once.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from spikekit import surrogate as _sg
from spikekit.neurons._math import RESETS, Options, detach_if_independent, fire, integrate, leak
from spikekit.neurons._peer_keywords import peer_value_hint, unknown_keywords_message

__all__ = [
    "Options",
    "Neuron",
    "Param",
    "fire",
    "integrate",
    "leak",
    "detach_if_independent",
    "RESETS",
    "check_threshold",
]

_MISSING: Any = object()

_DESCRIPTION_FORMAT = "spikekit-neuron/1"
_EXTRA_STATE = "_extra_state"  # torch's key suffix for get_extra_state()
# Options a built model switches as a mode (replace_options), not part of what was trained.
_MODE_OPTIONS = frozenset({"spiking"})


def _plain_option(v: Any) -> Any:
    """An :class:`Options` value as plain data: a surrogate becomes ``{"name", **fields}``."""
    if isinstance(v, _sg.Surrogate):
        return {"name": type(v).__name__, **{f.name: getattr(v, f.name) for f in dataclasses.fields(v)}}
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    return repr(v)


def encode_description(description: dict[str, Any]) -> Tensor:
    """A neuron description as a ``uint8`` tensor of its JSON text (how ``state_dict`` holds it).

    A tensor, not a dict, because code that walks a ``state_dict`` expects tensors there:
    ``torch.jit.trace`` (and with it TorchScript ONNX export) detaches every value, and
    ``.to(device)`` loops and EMA helpers do the same.

    Args:
        description: a dict from :meth:`Neuron.describe` (plain data).

    Returns:
        A 1-d ``uint8`` tensor.
    """
    data = json.dumps(description, sort_keys=True).encode()
    return torch.tensor(list(data), dtype=torch.uint8)


def decode_description(value: Any) -> Any:
    """The description dict of a neuron's ``_extra_state`` entry (a tensor from
    :func:`encode_description`; a dict is returned as it is).

    Args:
        value: the ``<prefix>_extra_state`` value of a ``state_dict``.

    Returns:
        The description dict (or ``value`` unchanged when it is neither).

    Example:
        >>> import spikekit as spk
        >>> decode_description(spk.LIF(reset="soft").state_dict()["_extra_state"])["options"]["reset"]
        'soft'
    """
    if isinstance(value, Tensor) and value.dtype == torch.uint8 and value.ndim == 1:
        try:
            return json.loads(bytes(value.tolist()).decode())
        except (UnicodeDecodeError, ValueError):
            return value
    return value


def _summary(t: Tensor) -> str:
    """A loaded value for a message: the number, or the range and count of bad values."""
    if t.numel() == 1:
        return f"{t.item():g}"
    finite = t[torch.isfinite(t)]
    rng = (
        f"values in [{float(finite.min()):g}, {float(finite.max()):g}]"
        if finite.numel()
        else "no finite values"
    )
    bad = int((~torch.isfinite(t)).sum())
    return rng + (f" and {bad} NaN/inf" if bad else "")


def _show(v: Any) -> str:
    """A described option for a message: a surrogate as ``Sigmoid(alpha=4.0)``, others by repr."""
    if isinstance(v, dict) and "name" in v:
        fields = ", ".join(f"{k}={x!r}" for k, x in v.items() if k != "name")
        return f"{v['name']}({fields})"
    return repr(v)


def _is_tensor_value(v: Any) -> bool:
    return isinstance(v, Tensor) and v.ndim > 0


def _host(v: float | Tensor) -> Tensor | None:
    """``v`` as a float64 CPU tensor for checking, or ``None`` when it has no data (meta)."""
    if isinstance(v, Tensor):
        if v.is_meta:
            return None
        return v.detach().to("cpu", torch.float64)
    return torch.tensor(v, dtype=torch.float64, device="cpu")


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
        t = _host(tau)
        if t is not None:
            if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
                raise ValueError(f"tau{what} must be finite and > 0, got {tau}")
            if bool((t < dt).any()):
                raise ValueError(
                    f"tau{what} must be >= dt (beta = 1 - dt/tau would be negative), got tau={tau}, dt={dt}"
                )
        if _is_tensor_value(tau):
            # float64 here; the module stores it in the default dtype but keeps this exact
            # value for float64 inputs (see Neuron._cast).
            return 1 - dt / tau.detach().to(torch.float64)
        return float(1 - dt / float(tau))
    b = _host(beta)
    if b is not None and (not bool(torch.isfinite(b).all()) or bool((b < 0).any()) or bool((b > 1).any())):
        raise ValueError(f"beta{what} must be in [0, 1], got {beta}")
    return beta.detach().clone() if _is_tensor_value(beta) else float(beta)


KINDS = ("real", "decay", "positive")


@dataclass(frozen=True)
class Param:
    """A neuron parameter, declared once in the neuron's class.

    Args:
        name: the field of the neuron's ``Params`` NamedTuple (and the constructor keyword).
        default: default value; for a parameter with a time constant, the default *time
            constant*.
        tau: the name of a continuous-time constant the user may give instead, converted
            with ``name = 1 - dt / tau`` (forward Euler); implies ``kind="decay"``.
        kind: ``"real"`` (unconstrained), ``"decay"`` (in [0, 1]; learnt as ``sigmoid(w)``)
            or ``"positive"`` (> 0; learnt as ``softplus(w)``). The reparametrisation keeps
            the gradient everywhere, unlike clamping.
        off: value used when the time constant is given as ``None`` (e.g. ``LI(tau_syn=None)``
            has no synaptic current: ``beta_syn = 0``); ``None`` means ``None`` is refused.
        doc: one line for the generated constructor signature and ``repr``.
    """

    name: str
    default: float
    tau: str | None = None
    kind: str = "real"
    off: float | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.tau is not None and self.kind == "real":
            object.__setattr__(self, "kind", "decay")
        if self.kind not in KINDS:
            raise ValueError(f"Param {self.name}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def raw_name(self) -> str:
        """Attribute holding the learnt, unconstrained value (``beta_logit``, ``a_raw``)."""
        return {"real": self.name, "decay": self.name + "_logit", "positive": self.name + "_raw"}[self.kind]

    def to_raw(self, t: Tensor) -> Tensor:
        """Unconstrained value of ``t`` (inverse of :meth:`from_raw`)."""
        if self.kind == "decay":
            return torch.logit(t)
        if self.kind == "positive":
            return t + torch.log(-torch.expm1(-t))  # inverse softplus
        return t

    def from_raw(self, w: Tensor) -> Tensor:
        if self.kind == "decay":
            return torch.sigmoid(w)
        if self.kind == "positive":
            return F.softplus(w)
        return w

    def check_learnable(self, t: Tensor | None, who: str, given: Any) -> None:
        if t is None:
            return
        if self.kind == "decay" and bool(((t <= 0) | (t >= 1)).any()):
            raise ValueError(f"{who}: a learnable {self.name} must lie strictly inside (0, 1), got {given}")
        if self.kind == "positive" and bool((t <= 0).any()):
            raise ValueError(f"{who}: a learnable {self.name} must be > 0, got {given}")

    def resolve(self, kwargs: dict[str, Any], dt: float, who: str) -> float | Tensor:
        """Take this parameter's keywords out of ``kwargs`` and return its value."""
        if self.tau is None:
            value = kwargs.pop(self.name, self.default)
            t = _host(value)
            if t is not None and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{who}: {self.name} must be finite, got {value}")
            if t is not None and self.kind == "positive" and bool((t <= 0).any()):
                raise ValueError(f"{who}: {self.name} must be > 0, got {value}")
            return value
        tau = kwargs.pop(self.tau, _MISSING)
        value = kwargs.pop(self.name, _MISSING)
        if value is None:
            value = _MISSING
        if tau is None and value is _MISSING:
            if self.off is None:
                raise ValueError(f"{who}: {self.tau}=None is not allowed; give a time constant > 0")
            return self.off
        try:
            return decay_from(
                None if tau is _MISSING else tau,
                None if value is _MISSING else value,
                dt,
                self.default,
                self.tau[3:] if self.tau.startswith("tau") else "",
            )
        except ValueError as e:
            raise ValueError(f"{who}: {e}") from None


_MODULE_KW = ("dt", "shape", "learn", "batch_first", "check_finite")
_SPIKING_OPTIONS = (
    "surrogate",
    "reset",
    "detach_reset",
    "reset_delay",
    "decay_input",
    "binary",
    "time_dependent",
)


class Neuron(nn.Module):
    """Base class of all neuron modules.

    A subclass declares its step function, containers and parameters; the constructor is
    generated from them (see :class:`Param`)::

        class LIF(Neuron):
            step_fn = staticmethod(lif_step)
            state_type, params_type = LIFState, LIFParams
            parameters_decl = (Param("beta", 2.0, tau="tau"), Param("v_th", 1.0), ...)

    Every neuron accepts ``dt``, ``shape`` (per-neuron parameters; ``"infer"`` sizes them by
    the first input), ``learn`` (names to learn, a parameter's name or its time constant's),
    ``batch_first`` and ``check_finite``, plus the :class:`Options` fields listed in
    ``options_used``.

    Call forms (return types never change):

    * ``neuron(xs)`` on ``[T, B, *features]`` returns spikes ``[T, B, *features]`` and starts
      from a fresh state each call (so it drops into ``nn.Sequential``). Inside
      :func:`spikekit.stepwise` it takes one step ``[B, *features]`` and carries the state.
    * ``neuron.scan(xs, state=None)`` returns ``(outputs, final_state)``.
    * ``neuron.step(x, state=None)`` returns ``(output, new_state)``.

    Saving: ``state_dict()`` holds the parameters and, under ``_extra_state``, the neuron's
    description (:meth:`describe`, as a JSON ``uint8`` tensor); loading into a neuron built with other options
    fails naming each difference, learnt and fixed parameters load into each other, and a
    ``shape="infer"`` neuron saves and loads as torch's ``nn.Lazy*`` modules do.
    """

    state_type: ClassVar[type]
    params_type: ClassVar[type]
    step_fn: ClassVar[Callable[..., tuple[Tensor, Any]]]
    parameters_decl: ClassVar[tuple[Param, ...]] = ()
    positional: ClassVar[tuple[str, ...]] = ()
    options_used: ClassVar[tuple[str, ...]] = _SPIKING_OPTIONS
    base_options: ClassVar[Options] = Options()
    ann_activation: ClassVar[Callable[[Tensor], Tensor]] = staticmethod(F.relu)

    options: Options
    ann: bool
    # Set per instance inside spikekit.keep_state; the class default keeps older pickles working.
    _kept: _Stream | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "parameters_decl" not in cls.__dict__ and "step_fn" not in cls.__dict__:
            return  # a plain subclass (e.g. a user's tweak) inherits everything
        names = [p.name for p in cls.parameters_decl]
        if "params_type" in cls.__dict__ and tuple(names) != tuple(cls.params_type._fields):
            raise TypeError(
                f"{cls.__name__}: parameters_decl declares {names} but {cls.params_type.__name__} "
                f"has fields {list(cls.params_type._fields)} (same names, same order)"
            )
        sig = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for n in cls.positional:
            sig.append(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
        for n, default in cls._keywords().items():
            if n not in cls.positional:
                sig.append(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=default))
        cls.__signature__ = inspect.Signature(sig)  # type: ignore[attr-defined]

    @classmethod
    def _keywords(cls) -> dict[str, Any]:
        """Every constructor keyword with its default (``None``: computed from another)."""
        kw: dict[str, Any] = {}
        for p in cls.parameters_decl:
            if p.tau is not None:
                kw[p.tau] = None
                kw[p.name] = None
            else:
                kw[p.name] = p.default
        if any(p.tau is not None for p in cls.parameters_decl):
            kw["dt"] = 1.0
        for f in cls.options_used:
            kw[f] = getattr(cls.base_options, f)
        kw.update(shape=None, learn=(), batch_first=False, check_finite=False)
        return kw

    @classmethod
    def learnable_names(cls) -> dict[str, str]:
        """``learn=`` name -> parameter name (a time constant learns its decay)."""
        out = {}
        for p in cls.parameters_decl:
            out[p.name] = p.name
            if p.tau is not None:
                out[p.tau] = p.name
        return out

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        cls = type(self)
        who = cls.__name__
        if len(args) > len(cls.positional):
            raise TypeError(
                f"{who}() takes {len(cls.positional)} positional argument(s) "
                f"({', '.join(cls.positional) or 'none'}) but {len(args)} were given; pass the rest by keyword"
            )
        for n, a in zip(cls.positional, args, strict=False):
            if n in kwargs:
                raise TypeError(f"{who}() got multiple values for argument {n!r}")
            kwargs[n] = a
        accepted = cls._keywords()
        unknown = set(kwargs) - set(accepted)
        if unknown:
            # A peer's keyword (threshold=, spike_grad=, ...) gets our equivalent in the message.
            raise TypeError(unknown_keywords_message(who, unknown, accepted))
        for k, v in kwargs.items():
            hint = peer_value_hint(who, k, v, accepted)
            if hint is not None:
                raise ValueError(hint)
        dt = kwargs.pop("dt", 1.0)
        check_dt(dt, who)
        self.dt = float(dt)
        changes = {f: kwargs.pop(f) for f in cls.options_used if f in kwargs}
        if "surrogate" in changes:
            if changes["surrogate"] is None:
                raise ValueError(f"{who}: surrogate must be a Surrogate or its name, got None")
            changes["surrogate"] = _sg.get(changes["surrogate"])
        options = dataclasses.replace(cls.base_options, **changes)
        values = {p.name: p.resolve(kwargs, dt, who) for p in cls.parameters_decl}
        cls.check_values(values, options, who)
        self._setup(
            values=values,
            options=options,
            shape=kwargs.pop("shape", None),
            learn=kwargs.pop("learn", ()),
            batch_first=kwargs.pop("batch_first", False),
            check_finite=kwargs.pop("check_finite", False),
        )

    @classmethod
    def check_values(cls, values: dict[str, float | Tensor], options: Options, who: str) -> None:
        """Refuse parameter combinations that cannot work (override to add a neuron's own).

        Run by the constructor and, on the loaded values, by ``load_state_dict``; an override
        calls ``super().check_values`` first.
        """
        if options.surrogate is not None and "v_th" in values:
            check_threshold(values["v_th"], values.get("v_reset"), options.reset, who)

    # ------------------------------------------------------------------ construction
    def _setup(
        self,
        *,
        values: dict[str, float | Tensor],
        options: Options,
        shape: int | Iterable[int] | str | None,
        learn: str | Iterable[str],
        batch_first: bool,
        check_finite: bool,
    ) -> None:
        name = type(self).__name__
        decl = {p.name: p for p in type(self).parameters_decl}
        if isinstance(learn, str):
            learn = (learn,)
        aliases = self.learnable_names()
        learnt: set[str] = set()
        for item in learn:
            key = aliases.get(item)
            if key is None:
                raise ValueError(f"{name}: cannot learn {item!r}; learnable: {', '.join(sorted(aliases))}")
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
        self._kept: _Stream | None = None  # spikekit.keep_state: the last final state, detached
        self._learnt = frozenset(learnt)
        # The values as given, so reset_parameters() can rebuild them (e.g. after to_empty()).
        self._init_values = dict(values)
        # Fixed parameters as given, in float64 on the CPU, with the dtype they are stored in:
        # a float64 input then computes from these rather than from the float32 buffer (the
        # buffers stay in the default dtype so state_dict, devices and kernels are unchanged).
        self._exact: dict[str, tuple[Tensor, torch.dtype]] = {}
        for k, v in values.items():
            p = decl[k]
            t = self._initial(k, v)
            exact = _host(v)
            if k not in learnt and exact is not None and t.dtype != torch.float64:
                self._exact[k] = (exact, t.dtype)
            if self._pending is not None:
                p.check_learnable(_host(t) if k in learnt else None, name, v)
                self._pending[k] = t
                if k in learnt:
                    self.register_parameter(p.raw_name, nn.UninitializedParameter())
                else:
                    self.register_buffer(k, nn.UninitializedBuffer())
            elif k in learnt:
                p.check_learnable(_host(t), name, v)
                self.register_parameter(p.raw_name, nn.Parameter(p.to_raw(t)))
            else:
                self.register_buffer(k, t)

    def _initial(self, k: str, v: float | Tensor, device: torch.device | None = None) -> Tensor:
        """The stored (constrained) value of parameter ``k`` from the given ``v``."""
        t = torch.as_tensor(v, dtype=torch.get_default_dtype(), device=device).detach().clone()
        if self.shape is not None and t.ndim == 0:
            t = t.expand(self.shape).clone()
        return t

    def reset_parameters(self) -> None:
        """Set every parameter back to its constructor value (in place, on its device).

        With ``to_empty``, this completes a model built under ``torch.device("meta")``.
        """
        if self._pending is not None:
            return
        decl = {p.name: p for p in type(self).parameters_decl}
        with torch.no_grad():
            for k, v in self._init_values.items():
                p = decl[k]
                target = getattr(self, p.raw_name if k in self._learnt else k)
                if isinstance(v, Tensor) and v.is_meta:
                    raise RuntimeError(
                        f"{type(self).__name__}.reset_parameters: {k} was given as a meta tensor, so "
                        f"its value is unknown; give numbers (or real tensors) to the constructor"
                    )
                t = self._initial(k, v, device=target.device)
                target.copy_(p.to_raw(t) if k in self._learnt else t)

    def _materialize(self, features: tuple[int, ...], device: torch.device) -> None:
        """Size pending ``shape='infer'`` parameters by the input's feature dims (once)."""
        assert self._pending is not None
        decl = {p.name: p for p in type(self).parameters_decl}
        with torch.no_grad():
            for k, t in self._pending.items():
                p = decl[k]
                value = t.to(device).expand(features)
                learnt = k in self._learnt
                target = getattr(self, p.raw_name if learnt else k)
                target.materialize(features, device=device, dtype=t.dtype)
                target.copy_(p.to_raw(value) if learnt else value)
        self.shape = tuple(features)
        self._pending = None

    # ------------------------------------------------------------------ saving and loading
    # Only the state_dict / load paths below: nothing here runs in step, scan or forward.
    def describe(self) -> dict[str, Any]:
        """What is needed to rebuild this neuron, as small plain data (saved in its ``state_dict``).

        Strings, numbers, bools, ``None``, lists and dicts only; ``state_dict`` holds it as a
        ``uint8`` tensor of its JSON text (:func:`encode_description`), so a checkpoint loads
        with ``torch.load(weights_only=True)`` and every ``state_dict`` value stays a tensor.

        Returns:
            ``{"format", "class", "dt", "options", "params", "shape", "batch_first"}``: the class
            name; ``dt``; every :class:`Options` field (the surrogate as
            ``{"name": class name, **its fields}``); per parameter ``{"learnt": bool, "shape":
            list or None}`` (``None`` before a ``shape="infer"`` neuron has seen data); the
            neuron shape (a list, ``None`` for scalar parameters, or ``"infer"`` while unsized);
            and the layout.

        Example:
            >>> import spikekit as spk
            >>> d = spk.LIF(reset="soft", surrogate="sigmoid").describe()
            >>> d["class"], d["options"]["reset"], d["options"]["surrogate"]
            ('LIF', 'soft', {'name': 'Sigmoid', 'alpha': 4.0})
        """
        params = {}
        for p in type(self).parameters_decl:
            t = self._parameters.get(p.raw_name) if p.name in self._learnt else self._buffers.get(p.name)
            sized = isinstance(t, Tensor) and not is_lazy(t)
            params[p.name] = {"learnt": p.name in self._learnt, "shape": list(t.shape) if sized else None}
        shape: list[int] | str | None = "infer" if self._pending is not None else None
        if self.shape is not None:
            shape = list(self.shape)
        return {
            "format": _DESCRIPTION_FORMAT,
            "class": type(self).__name__,
            "dt": self.dt,
            "options": {
                f.name: _plain_option(getattr(self.options, f.name)) for f in dataclasses.fields(self.options)
            },
            "params": params,
            "shape": shape,
            "batch_first": self.batch_first,
        }

    def get_extra_state(self) -> Tensor:
        """The neuron's description (:meth:`describe`), stored as ``<prefix>_extra_state``.

        Returns:
            The description as a ``uint8`` tensor of JSON (:func:`encode_description`; read it
            with :func:`decode_description`).
        """
        return encode_description(self.describe())

    def set_extra_state(self, state: Any) -> None:
        """Check a saved description against this neuron; the options are never overwritten.

        ``load_state_dict`` does not come here (it collects the differences of every neuron of
        a model into one error); this is for a direct call.

        Args:
            state: a dict from :meth:`describe`, or its tensor from :meth:`get_extra_state`.

        Raises:
            ValueError: the description differs from this neuron (each field named, both values).
        """
        problems = self.differences(state)
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))

    def differences(self, saved: Any) -> list[str]:
        """How a saved description differs from this neuron, one ``"field: checkpoint A, this module B"`` each.

        Compared: the class, ``dt`` and every :class:`Options` field except ``spiking`` (a mode
        that :func:`~spikekit.neurons._base.replace_options` switches on a built model, like
        ``non_spike``). Not compared: which parameters are learnt (learnt and fixed values load
        into each other), the shapes (``load_state_dict`` names a size mismatch itself) and
        ``batch_first`` (the same weights run in either layout).

        Args:
            saved: a dict from :meth:`describe`, or its tensor from :meth:`get_extra_state`.

        Returns:
            The differences; empty when the checkpoint fits.
        """
        saved = decode_description(saved)
        if not isinstance(saved, dict) or saved.get("format") != _DESCRIPTION_FORMAT:
            what = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
            return [f"unknown neuron description {what!r} (expected {_DESCRIPTION_FORMAT!r})"]
        mine = self.describe()
        out = []
        for key in ("class", "dt"):
            if key in saved and saved[key] != mine[key]:
                out.append(f"{key}: checkpoint {saved[key]!r}, this module {mine[key]!r}")
        theirs = saved.get("options") or {}
        for f, value in theirs.items():
            if f in _MODE_OPTIONS:
                continue
            here = mine["options"].get(f, _MISSING)
            if here is _MISSING:
                out.append(f"{f}: checkpoint {_show(value)}, this module has no such option")
            elif value != here:
                out.append(f"{f}: checkpoint {_show(value)}, this module {_show(here)}")
        return out

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        if self._pending is None:
            super()._save_to_state_dict(destination, prefix, keep_vars)
            return
        # shape="infer" before the first input: the uninitialised tensors as they are, as
        # torch's nn.Lazy* modules save them (detach() is refused on them).
        for name, t in (*self._parameters.items(), *self._buffers.items()):
            if t is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = t if (is_lazy(t) or keep_vars) else t.detach()
        destination[prefix + _EXTRA_STATE] = self.get_extra_state()

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # torch's load_state_dict hands each module a copy it may edit.
        key = prefix + _EXTRA_STATE
        saved = state_dict.pop(key, None)
        where = f"{type(self).__name__} {prefix[:-1]!r}" if prefix else type(self).__name__
        if saved is not None:
            problems = self.differences(saved)
            if problems:
                error_msgs.append(
                    f"{where} was saved with other options: {'; '.join(problems)} (build it with the "
                    f"checkpoint's options, or drop the key {key!r} to load the tensors alone)"
                )
        converted = True
        for p in type(self).parameters_decl:
            msg = self._convert_learnt(p, state_dict, prefix)
            if msg:
                error_msgs.append(f"{where}: {msg}")
                converted = False
        if converted:
            error_msgs.extend(f"{where}: {msg}" for msg in self._invalid_values(state_dict, prefix))
        if self._pending is not None:
            self._materialize_from(state_dict, prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        # A state_dict from before neurons described themselves has no such key: it loads
        # (with nothing to check the options against) rather than failing a strict load.
        if key in missing_keys:
            missing_keys.remove(key)

    def _convert_learnt(self, p: Param, state_dict: dict[str, Any], prefix: str) -> str | None:
        """Rename (and reparametrise) ``p`` in ``state_dict`` when it was saved learnt and is fixed here, or back.

        A learnt decay is saved as ``beta_logit`` (``sigmoid(beta_logit) = beta``), a learnt
        positive value as ``<name>_raw`` (softplus); a fixed one under its name.

        Returns:
            ``None``, or why the saved value cannot be taken.
        """
        if p.kind == "real":
            return None  # stored under its own name, learnt or fixed
        learnt = p.name in self._learnt
        mine, other = (p.raw_name, p.name) if learnt else (p.name, p.raw_name)
        if prefix + mine in state_dict or prefix + other not in state_dict:
            return None
        v = state_dict.pop(prefix + other)
        if not isinstance(v, Tensor) or is_lazy(v):
            state_dict[prefix + mine] = v  # an unsized lazy value: nothing to convert
            return None
        with torch.no_grad():
            w = v.detach().to(torch.float64)
            if not learnt:
                state_dict[prefix + mine] = p.from_raw(w).to(v.dtype)
                return None
            try:
                p.check_learnable(w, "", "")
            except ValueError:
                lo, hi = float(w.min()), float(w.max())
                inside = "strictly inside (0, 1)" if p.kind == "decay" else "> 0"
                return (
                    f"{p.name} is fixed in the checkpoint with values in [{lo:g}, {hi:g}], but learnt "
                    f"here, where it must lie {inside}; build this module without learning {p.name}"
                )
            state_dict[prefix + mine] = p.to_raw(w).to(v.dtype)
        return None

    def _invalid_values(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        """Why the parameter values in ``state_dict`` would be refused by the constructor.

        The constructor's rules on each loaded value: finite (a learnt one's unconstrained
        value too), a fixed decay in [0, 1] and a fixed positive kind > 0 (a learnt one is
        inside its range by its reparametrisation). Relations between parameters
        (:meth:`check_values`, e.g. ``v_th > v_reset``) are not checked: training moves learnt
        parameters past them, and such a checkpoint must still resume. Load path only (host
        copies).

        Returns:
            One message per problem; empty when the values are acceptable.
        """
        out: list[str] = []
        for p in type(self).parameters_decl:
            learnt = p.name in self._learnt
            name = p.raw_name if learnt else p.name
            v = state_dict.get(prefix + name)
            if not isinstance(v, Tensor) or is_lazy(v) or v.is_meta or not v.is_floating_point():
                continue
            with torch.no_grad():
                w = v.detach().to("cpu", torch.float64)
            if not bool(torch.isfinite(w).all()):
                out.append(f"{name} must be finite, got {_summary(w)} in the checkpoint")
            elif learnt:
                continue
            elif p.kind == "decay" and bool(((w < 0) | (w > 1)).any()):
                out.append(f"{p.name} must be in [0, 1] (a decay), got {_summary(w)} in the checkpoint")
            elif p.kind == "positive" and bool((w <= 0).any()):
                out.append(f"{p.name} must be > 0, got {_summary(w)} in the checkpoint")
        return out

    def _materialize_from(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Size an unsized ``shape="infer"`` neuron by the saved tensors, as torch's ``nn.Lazy*`` do."""
        for p in type(self).parameters_decl:
            name = p.raw_name if p.name in self._learnt else p.name
            v = state_dict.get(prefix + name)
            if isinstance(v, Tensor) and not is_lazy(v):
                target = self._parameters.get(name) if name in self._parameters else self._buffers.get(name)
                device = target.device if target is not None else v.device
                self._materialize(tuple(v.shape), device)
                return

    def params(self) -> Any:
        """The neuron's parameters as its ``Params`` NamedTuple of tensors (after reparametrisation)."""
        if self._pending is not None:
            raise RuntimeError(
                f"{type(self).__name__}(shape='infer') has not seen an input yet; call it once on data "
                f"(a dry run) so it can size its per-neuron parameters"
            )
        vals = []
        for p in type(self).parameters_decl:
            if p.name in self._learnt:
                vals.append(p.from_raw(getattr(self, p.raw_name)))
            else:
                vals.append(getattr(self, p.name))
        return self.params_type(*vals)

    def __getattr__(self, name: str) -> Any:
        """Learnt parameters under their public names (``neuron.beta``, ``neuron.tau``).

        A learnt parameter is stored unconstrained (``beta_logit``), so nn.Module alone would
        not find ``neuron.beta``; this reads it back constrained and differentiable. A time
        constant (``tau``, ``tau_syn``...) reads ``dt / (1 - decay)`` for fixed and learnt
        alike. Only parameters are exposed here, never state; the lookup runs only after
        nn.Module's own (buffers, parameters, submodules) found nothing.

        Args:
            name: the attribute.

        Returns:
            The parameter's current value as a tensor.
        """
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        for p in type(self).parameters_decl:
            if name != p.name and name != p.tau:
                continue
            if self.__dict__.get("_pending") is not None:
                break  # shape='infer' before the first input: no value yet
            if p.name in self.__dict__.get("_learnt", ()):
                value = p.from_raw(super().__getattr__(p.raw_name))
            elif name == p.tau and p.name in self.__dict__.get("_buffers", {}):
                value = super().__getattr__(p.name)
            else:
                break
            # Forward Euler: decay = 1 - dt / tau, so tau = dt / (1 - decay).
            return value if name == p.name else self.__dict__.get("dt", 1.0) / (1 - value)
        return super().__getattr__(name)  # nn.Module's own AttributeError

    def extra_repr(self) -> str:
        if self._pending is not None:
            return "shape='infer' (not yet sized)"
        parts = []
        for k, t in self.params()._asdict().items():
            if t.is_meta:
                val = "meta"
            else:
                val = f"{t.item():.4g}" if t.ndim == 0 else f"tensor{tuple(t.shape)}"
            parts.append(f"{k}={val}{' (learnt)' if k in self._learnt else ''}")
        o = self.options
        used = type(self).options_used
        if o.surrogate is not None:
            parts.append(f"surrogate={o.surrogate}")
            parts.append(f"reset={o.reset!r}")
            for f in ("detach_reset", "reset_delay"):
                if getattr(o, f):
                    parts.append(f"{f}=True")
            for f in ("spiking", "binary", "time_dependent"):
                if not getattr(o, f):
                    parts.append(f"{f}=False")
        elif not o.time_dependent:
            parts.append("time_dependent=False")
        if "decay_input" in used:
            parts.append(f"decay_input={o.decay_input}")
        if self.shape is not None:
            parts.append(f"shape={self.shape}")
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)

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
        # The time axis is dim 1 of a batch-first input: [0, T, ...] is an empty batch, which
        # runs (to an empty output) as [T, 0, ...] does.
        if lead == 2 and x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"{name}: {what} has no time steps (T = 0), shape {tuple(x.shape)} ({layout})")
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

    def _cast(self, params: Any, x: Tensor) -> Any:
        """``params`` in ``x``'s dtype, with float64 precision for float64 ``x``.

        A fixed parameter stored in float32 (the default dtype at construction) holds the
        constructor's number rounded; for float64 ``x`` the number as given is used instead,
        wherever the stored value still equals that rounding (so ``load_state_dict`` or an
        in-place edit to another value is respected). ``module.double()`` keeps the rounded
        value in float64, which the same test recognises.

        Args:
            params: the neuron's ``Params`` NamedTuple (from :meth:`params`).
            x: the input whose dtype and device the parameters take.

        Returns:
            A ``Params`` NamedTuple of tensors in ``x.dtype``.
        """
        exact = self.__dict__.get("_exact") if x.dtype == torch.float64 else None
        if not exact:
            return type(params)(*(p.to(x.dtype) for p in params))
        out = []
        for name, p in zip(params._fields, params, strict=True):
            p = p.to(x.dtype)
            if name in exact:
                e, stored = exact[name]
                e = e.to(x.device)
                p = torch.where(p == e.to(stored).to(x.dtype), e, p)
            out.append(p)
        return type(params)(*out)

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
        if state is None:
            state = self.initial_state(x)
        else:
            state = self._check_state(state, x.shape, x, None)
            if self.check_finite:
                self._check_finite_state(state, "the state passed in")
        if self.ann:
            return type(self).ann_activation(x), state
        p = self._cast(self.params(), x)
        out, state = type(self).step_fn(x, state, p, self.options)
        if self.check_finite:
            self._check_finite_state(state, "the state after this step")
        if self._kept is not None:
            self._kept.state = type(state)(*(t.detach() for t in state))
        return out, state

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
        if state is None:
            state = self.initial_state(xs[0])
        else:
            state = self._check_state(state, xs.shape[1:], xs, orig_shape)
            if self.check_finite:
                self._check_finite_state(state, "the state passed in")
        if self.ann:
            out = type(self).ann_activation(xs)
        else:
            p = self._cast(self.params(), xs)
            start = state
            if self._recorder is not None:
                out, states = kernels.scan_trace(type(self).step_fn, xs, state, p, self.options)
                self._recorder.append((states, out))
                state = type(state)(*(s[-1] for s in states))
            else:
                out, state = kernels.scan(type(self).step_fn, xs, state, p, self.options)
            if self.check_finite:
                self._check_finite_state(state, "the final state", (xs, start, p))
        if self._kept is not None:
            self._kept.state = type(state)(*(t.detach() for t in state))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, state

    def _check_finite_state(
        self, state: Any, what: str, rerun: tuple[Tensor, Any, Any] | None = None
    ) -> None:
        """``check_finite=True``: raise naming the field (and step) of a non-finite ``state``.

        A membrane that becomes NaN stays NaN while the spikes stay finite zeros
        (``H(NaN) = 0``), so the outputs alone never show it. One host sync per call, only
        with ``check_finite``.

        Args:
            state: the state NamedTuple to check.
            what: which state it is, for the message.
            rerun: ``(xs, initial state, params)`` of a scan: on failure the sequence is run
                again with every state kept, to name the first step where the field went bad.

        Raises:
            ValueError: a field holds NaN or inf.
        """
        ok = torch.stack([torch.isfinite(t).all() for t in state]).tolist()
        if all(ok):
            return
        f = ok.index(False)
        field = state._fields[f]
        t = state[f].detach()
        bad = int((~torch.isfinite(t)).sum())
        where = ""
        if rerun is not None:
            from spikekit import kernels

            xs, start, p = rerun
            with torch.no_grad():
                _, states = kernels.scan_trace(type(self).step_fn, xs, start, p, self.options)
            per_step = (~torch.isfinite(states[f])).flatten(1).any(1).nonzero()
            if per_step.numel():
                where = f" from step {int(per_step[0])} of T = {xs.shape[0]} (0-based)"
        raise ValueError(
            f"{type(self).__name__}: state.{field} of {what} holds {bad} NaN/inf value(s){where} "
            f"(check_finite=True). A non-finite membrane stays so while the spikes read 0; look for an "
            f"overflowing input scale or parameter, or a state carried over from a diverged step"
        )

    def forward(self, xs: Tensor) -> Tensor:
        """Outputs for a whole sequence from a fresh state (one step inside ``stepwise``)."""
        if self._stream is not None:
            out, new_state = self.step(xs, self._stream.state)
            self._stream.state = new_state
            if self._recorder is not None:
                self._recorder.append(
                    (type(new_state)(*(s.unsqueeze(0) for s in new_state)), out.unsqueeze(0))
                )
            return out
        self._refuse_time_slice(xs)
        return self.scan(xs)[0]

    def _refuse_time_slice(self, xs: Tensor) -> None:
        """Raise when a sequence-mode call may have been given one time slice ``[B, *features]``.

        Property 3 of DESIGN.md: a batch is never silently read as time. The feature rank
        decides: with a declared (or inferred) ``shape`` an input of rank ``1 + len(shape)`` is
        a slice. Without one, a 2-D input is ambiguous (``[B, F]`` after a ``Linear`` would run
        as ``T = B`` steps of batch ``F``), so it is refused; ``shape=()`` declares one scalar
        per sample and makes ``[T, B]`` a sequence. ``scan`` is not checked: calling it says
        "this is a sequence", and the neuron is elementwise over batch and features.
        """
        if not isinstance(xs, Tensor) or not xs.is_floating_point():
            return  # _check_x names the type or dtype, the more basic mistake
        feat = None if self._pending is not None else self.shape
        slice_ndim = 2 if feat is None else len(feat) + 1
        if xs.ndim != slice_ndim:
            return
        name = type(self).__name__
        layout = "[B, T, *features]" if self.batch_first else "[T, B, *features]"
        why = (
            f"its features are {feat}, so this is one time step [B, *features]"
            if feat is not None
            else "a 2-D input to a neuron without a declared shape is ambiguous: one time step "
            "[B, F] would run as T=B steps of batch F"
        )
        raise ValueError(
            f"{name}: got {tuple(xs.shape)} outside spikekit.stepwise, where a call takes a whole "
            f"sequence {layout}; {why}. To run one step at a time and carry the state, call the "
            f"model inside `with spikekit.stepwise(model): ...`; to run a sequence, give {layout}"
            + (" (or declare shape=() for one scalar per sample)" if feat is None else "")
        )

    def __getstate__(self) -> dict[str, Any]:
        # Transient scopes (stepwise state, recorder) never travel with a pickled/copied model.
        d = self.__dict__.copy()
        d["_stream"] = None
        d["_recorder"] = None
        d["_kept"] = None
        return d


class _Stream:
    """Holder for a neuron's state while inside :func:`spikekit.stepwise`."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None


def check_threshold(v_th: float | Tensor, v_reset: float | Tensor | None, reset: str, who: str) -> None:
    """``v_th`` finite; above ``v_reset`` for a hard reset and above 0 for a soft one.

    Either violation makes the neuron fire forever: a hard reset to ``v_reset >= v_th`` leaves
    it at the threshold, and a soft reset subtracts ``v_th``, which for ``v_th <= 0`` does not
    lower the membrane (at zero input it fires every step). ``v_reset=None``: the neuron has
    none (e.g. :class:`~spikekit.neurons.AlphaLIF`). Values without data (meta tensors) are not
    checked.

    Args:
        v_th: threshold, a number or a tensor.
        v_reset: hard-reset potential, or ``None``.
        reset: the :class:`Options` reset kind.
        who: the neuron's name for the message.

    Raises:
        ValueError: a value is not finite, or the threshold would make the neuron fire forever.
    """
    th = _host(v_th)
    vr = None if v_reset is None else _host(v_reset)
    if th is None or (v_reset is not None and vr is None):
        return
    if not bool(torch.isfinite(th).all()) or (vr is not None and not bool(torch.isfinite(vr).all())):
        raise ValueError(f"{who}: v_th and v_reset must be finite, got v_th={v_th}, v_reset={v_reset}")
    if reset == "soft" and bool((th <= 0).any()):
        raise ValueError(
            f"{who}: with reset='soft', v_th must be > 0: the reset subtracts v_th, so a threshold "
            f"<= 0 never lowers the membrane and the neuron fires every step (even at zero input); "
            f"got v_th={v_th}. Use a positive threshold, or reset='hard' with v_th > v_reset"
        )
    if reset == "hard" and vr is not None and bool((th <= vr).any()):
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
