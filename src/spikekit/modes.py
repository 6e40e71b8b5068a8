"""Scoped modes over a model: step-by-step streaming, recording, reset, and ANN/SNN switching.

Each function touches only the model it is given (never a global registry), and the
scoped ones undo themselves when the ``with`` block ends, even on error.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from spikekit import surrogate as _sg
from spikekit.layers._mode import StepAware
from spikekit.layers.time_distributed import TimeDistributed, feature_ndim
from spikekit.neurons._base import Neuron, _Stream

__all__ = [
    "check",
    "detach_state",
    "stepwise",
    "reset",
    "record",
    "Recording",
    "spike",
    "non_spike",
    "set_surrogate",
    "neurons_of",
    "keep_state",
    "nonfinite",
    "finite_flags",
]


def neurons_of(model: nn.Module) -> list[tuple[str, Neuron]]:
    """``(qualified name, neuron)`` for every neuron inside ``model`` (itself included)."""
    return [(n or type(m).__name__, m) for n, m in model.named_modules() if isinstance(m, Neuron)]


def _stateful(model: nn.Module) -> list[tuple[str, Neuron | StepAware]]:
    """Every module of ``model`` whose call form depends on the mode: neurons and step-aware layers."""
    return [
        (n or type(m).__name__, m) for n, m in model.named_modules() if isinstance(m, (Neuron, StepAware))
    ]


@contextlib.contextmanager
def stepwise(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` one time step per call, carrying neuron state between calls.

    Inside the block each neuron's ``forward`` takes one slice ``[B, *features]`` and keeps
    its state; :func:`reset` clears it (e.g. between batches). The state is dropped when the
    block ends. This is the snntorch ``init_hidden`` / spikingjelly single-step style, scoped.

    The spikekit layers of the model (:class:`~spikekit.layers.TimeDistributed`, pooling,
    :class:`~spikekit.layers.Flatten`, the batch norms and dropout over time) switch to one step
    ``[B, *features]`` too, so the same model definition runs in both modes with the same
    per-step results (batch norm in eval mode; in training its statistics are per step here).

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF())
        >>> with spk.stepwise(net):
        ...     outs = [net(torch.ones(4, 2)) for _ in range(5)]
        >>> torch.stack(outs).shape
        torch.Size([5, 4, 3])
    """
    with _slots(_stateful(model), "_stream", "stepwise", "module"):
        yield model


@contextlib.contextmanager
def _slots(found: list[tuple[str, nn.Module]], attr: str, who: str, what: str) -> Iterator[None]:
    """Give each module in ``found`` a fresh :class:`_Stream` in ``attr`` for the block, then clear it.

    Raises ``RuntimeError`` naming the module when one is already inside a ``who`` block.
    """
    for name, m in found:
        if getattr(m, attr) is not None:
            raise RuntimeError(f"{who}: {what} {name!r} is already inside a {who} block")
    try:
        for _, m in found:
            setattr(m, attr, _Stream())
        yield
    finally:
        for _, m in found:
            setattr(m, attr, None)


def _streams(model: nn.Module, who: str) -> list[_Stream]:
    """The stream slots of ``model``; raises when it has stateful modules but none is stepping.

    Outside :func:`stepwise` nothing is carried (each call starts from a fresh state), so a
    reset there would do nothing; a silent no-op hides the bug of an snntorch-style loop run
    without ``stepwise``, which is why this raises instead.
    """
    found = _stateful(model)
    live = [m._stream for _, m in found if m._stream is not None]
    if found and not live:
        raise RuntimeError(
            f"{who}: {type(model).__name__} is not inside spikekit.stepwise, so it carries no state: "
            f"outside stepwise every call runs a whole sequence [T, B, ...] from a fresh state. To "
            f"step through time and carry the state, use `with spikekit.stepwise(model): ...` and "
            f"call {who}(model) inside the block"
        )
    return live


def reset(model: nn.Module) -> None:
    """Clear the carried state of every neuron (and step-carrying layer) in ``model``.

    Only meaningful inside :func:`stepwise`; outside it raises ``RuntimeError`` (there is no
    state to clear, and a silent no-op would hide a loop run without ``stepwise``).
    """
    for stream in _streams(model, "reset"):
        stream.state = None


def _detach(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, tuple):  # a State NamedTuple, possibly nested (Recurrent's state)
        return type(x)(*(_detach(v) for v in x))
    return x


def detach_state(model: nn.Module) -> None:
    """Cut the graph of every carried state in ``model`` (truncated BPTT inside :func:`stepwise`).

    Outside :func:`stepwise` it raises ``RuntimeError``, like :func:`reset`.
    """
    for stream in _streams(model, "detach_state"):
        stream.state = _detach(stream.state)


# Raw torch layers that have a spikekit layer of the same name to use instead.
_RAW_FIX = {
    nn.Flatten: "spikekit.layers.Flatten()",
    nn.MaxPool2d: "spikekit.layers.MaxPool2d(...)",
    nn.AvgPool2d: "spikekit.layers.AvgPool2d(...)",
    nn.AdaptiveAvgPool2d: "spikekit.layers.AdaptiveAvgPool2d(...)",
}


def _raw_guard(path: str, sample_ndim: int | None) -> Callable[[nn.Module, tuple[Any, ...]], None]:
    """A forward pre-hook raising when the raw torch layer at ``path`` is given a sequence."""

    def hook(m: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if not isinstance(x, Tensor):
            return
        # nn.Flatten() on [T, B, ...] does not fail: it merges the batch into the features.
        merges_batch = isinstance(m, nn.Flatten) and x.ndim >= 3 and m.start_dim % x.ndim < 2
        if merges_batch or (sample_ndim is not None and x.ndim == sample_ndim + 2):
            kind = type(m).__name__
            alt = _RAW_FIX.get(type(m))
            raise ValueError(
                f"{kind} at {path!r} got [T, B, *features] {tuple(x.shape)}: torch layers take samples "
                f"[B, *features] and would fail or mix the batch into the features. "
                + (f"Use {alt}, or wrap" if alt else "Wrap")
                + f" it: spikekit.layers.TimeDistributed({kind}(...)) runs it on every time step "
                f"(and on one step inside spikekit.stepwise)"
            )

    return hook


def check(model: nn.Module, xs: Tensor) -> Tensor:
    """Run ``model`` once on the sequence ``xs``; raise where a raw torch layer would see time.

    A convolution, pooling, batch norm or ``nn.Flatten`` takes samples ``[B, *features]``.
    Given a sequence ``[T, B, *features]`` torch fails with a message about dims or, for
    ``nn.Flatten``, silently merges the batch into the features. spikekit owns no hook on a
    plain ``nn.Sequential`` (and installs no global one), so this is an explicit dry run: it
    puts forward pre-hooks on the raw layers of ``model`` that no spikekit layer wraps, runs it
    under ``torch.no_grad`` in eval mode, and removes the hooks and restores the mode
    afterwards, even on error. Neurons add their own check: one time step given as ``xs``
    raises an error that names :func:`stepwise`.

    Args:
        model: the network (run in sequence mode: not inside :func:`stepwise`).
        xs: a sample input ``[T, B, *features]`` (a small batch is enough).

    Returns:
        The model's output on ``xs``.

    Raises:
        ValueError: a raw layer got ``[T, B, ...]``; the message gives the layer's path and
            names :class:`~spikekit.layers.TimeDistributed` (and the spikekit layer to use).

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), spk.LIF())
        >>> spk.check(net, torch.rand(4, 2, 1, 8, 8))
        Traceback (most recent call last):
        ...
        ValueError: Conv2d at '0' got [T, B, *features] (4, 2, 1, 8, 8): ...
    """
    wrapped: set[str] = set()  # raw modules that a spikekit layer already runs per step
    for name, m in model.named_modules():
        if isinstance(m, (TimeDistributed, StepAware, Neuron)):
            wrapped.update(f"{name}.{sub}" if name else sub for sub, _ in m.named_modules() if sub)
    handles = []
    for name, m in model.named_modules():
        if name in wrapped or isinstance(m, (nn.Sequential, TimeDistributed, StepAware, Neuron)):
            continue
        n = feature_ndim(m)
        if n is not None or isinstance(m, nn.Flatten):
            handles.append(m.register_forward_pre_hook(_raw_guard(name or type(m).__name__, n)))
    was_training = model.training
    try:
        model.eval()  # a dry run must not move batch-norm statistics
        with torch.no_grad():
            return model(xs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


class Recording(dict):
    """Mapping ``neuron name -> state trace`` filled by :func:`record`, plus :attr:`spikes`.

    Each value is the neuron's ``State`` type whose fields are ``[T, B, *features]``
    (the state after each step; for most neurons ``.v`` is the membrane). Several calls
    inside one block are concatenated along time.

    Attributes:
        spikes: ``neuron name -> outputs [T, B, *features]``, time-first like the states:
            the spikes (the graded output for ``binary=False`` or a non-spiking ``LI``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._raw: dict[str, list[Any]] = {}
        self.spikes: dict[str, Tensor] = {}

    def _finish(self) -> None:
        # Each chunk is one call's (states, outputs), both time-first.
        for name, chunks in self._raw.items():
            if chunks:
                states = [c[0] for c in chunks]
                self[name] = type(states[0])(*(torch.cat(f) for f in zip(*states, strict=True)))
                self.spikes[name] = torch.cat([c[1] for c in chunks])


@contextlib.contextmanager
def record(model: nn.Module, *, detach: bool = True) -> Iterator[Recording]:
    """Record every neuron's state and output (spike) traces while the block runs.

    Return types do not change; neurons inside wrappers (``Recurrent``) are recorded too.

    Args:
        model: the model whose neurons to record.
        detach: store detached traces (default) so recording never keeps the graph alive.

    Yields:
        A :class:`Recording`, filled when the block ends.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF())
        >>> with spk.record(net) as rec:
        ...     _ = net(torch.ones(5, 4, 2))
        >>> rec["1"].v.shape, rec.spikes["1"].shape
        (torch.Size([5, 4, 3]), torch.Size([5, 4, 3]))
    """
    rec = Recording()
    found = neurons_of(model)
    for name, m in found:
        if m._recorder is not None:
            raise RuntimeError(f"record: neuron {name!r} is already being recorded")
    try:
        for name, m in found:
            rec._raw[name] = m._recorder = _DetachingList() if detach else []
        yield rec
    finally:
        for _, m in found:
            m._recorder = None
        rec._finish()


class _DetachingList(list):
    def append(self, item: tuple[Any, Tensor]) -> None:
        state, out = item
        super().append((type(state)(*(t.detach() for t in state)), out.detach()))


def _set_ann(model: nn.Module, ann: bool) -> nn.Module:
    for _, m in neurons_of(model):
        m.ann = ann
    return model


def spike(model: nn.Module) -> nn.Module:
    """Put every neuron of ``model`` in spiking (SNN) mode; returns ``model`` (eve-mli ``spike()``)."""
    return _set_ann(model, False)


def non_spike(model: nn.Module) -> nn.Module:
    """Put every neuron of ``model`` in non-spiking (ANN) mode; returns ``model``.

    Each neuron then applies its stateless ANN counterpart per step: IF -> ReLU, LIF ->
    LeakyReLU(0.01), CubaLIF/ALIF -> ReLU, LI -> identity (eve-mli ``non_spike()``), so one
    network can be trained as an ANN and run as an SNN.
    """
    return _set_ann(model, True)


def set_surrogate(model: nn.Module, surrogate: str | _sg.Surrogate, **kwargs: float) -> nn.Module:
    """Give every spiking neuron of ``model`` the same surrogate; returns ``model``."""
    s = _sg.get(surrogate, **kwargs)
    for _, m in neurons_of(model):
        if m.options.surrogate is not None:
            m.options = dataclasses.replace(m.options, surrogate=s)
    return model


@contextlib.contextmanager
def keep_state(model: nn.Module) -> Iterator[nn.Module]:
    """Keep each neuron's last final state (detached) so :func:`nonfinite` can check it.

    Outside :func:`stepwise` a call ``model(xs)`` starts every neuron from a fresh state and
    drops the final one, so a membrane that went NaN (its spikes read 0, ``H(NaN) = 0``) leaves
    no trace in the outputs. Inside this block each neuron holds a reference to the state its
    last ``scan``/``step`` ended in (one ``[B, *features]`` slice per field, no copy, no
    compute, no host sync); the references are dropped when the block ends. Touches only
    ``model``.

    Args:
        model: the network.

    Returns:
        A context manager yielding ``model``.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF())
        >>> with spk.keep_state(net):
        ...     _ = net(torch.full((4, 1, 2), float("nan")))
        ...     spk.nonfinite(net)
        '1.state.v'
    """
    with _slots(neurons_of(model), "_kept", "keep_state", "neuron"):
        yield model


def _tensors(obj: Any, path: str, out: list[tuple[str, Tensor]]) -> None:
    """Collect ``(path, tensor)`` from a tensor or nested (named) tuples, lists and dicts."""
    if isinstance(obj, Tensor):
        out.append((path or "tensor", obj))
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for f, v in zip(obj._fields, obj, strict=True):
            _tensors(v, f"{path}.{f}" if path else f, out)
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            _tensors(v, f"{path}.{i}" if path else str(i), out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _tensors(v, f"{path}.{k}" if path else str(k), out)


def nonfinite(obj: nn.Module | Any) -> str | None:
    """The path of the first tensor holding NaN or inf, or ``None`` when everything is finite.

    A neuron whose membrane goes NaN keeps it NaN and outputs finite zeros, so a finite loss
    does not show it; call this at the end of a sequence (e.g. once per batch in a trainer,
    next to the loss check). It costs one host sync (one reduction per tensor, read
    together) and nothing at all in the forward pass.

    What is checked, in module order:

    * a model: every neuron's parameters and buffers (``"1.v_th"``, ``"1.beta_logit"``), then
      the state it carries: inside :func:`stepwise` the stepping state, inside
      :func:`keep_state` the final state of its last call (``"1.state.v"``; a step-aware
      layer's carried state the same way). Outside both, no state is held, so only the
      parameters are checked;
    * a state ``NamedTuple`` (``"v"``), nested tuples, lists or dicts of them (a
      :class:`Recording` too: ``"1.states.v"``), or a tensor (``"tensor"``).

    Args:
        obj: a model, or states/tensors.

    Returns:
        The first non-finite path, or ``None``.

    Example:
        >>> import torch, spikekit as spk
        >>> from spikekit.neurons import LIFState
        >>> spk.nonfinite(LIFState(torch.tensor([0.0, float("nan")]))), spk.nonfinite(LIFState(torch.zeros(2)))
        ('v', None)
    """
    checked = finite_flags(obj)
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, flag) in enumerate(checked):
        by_device.setdefault(flag.device, []).append(i)
    ok = [True] * len(checked)
    for idx in by_device.values():
        flags = torch.stack([checked[i][1] for i in idx]).tolist()  # the one read per device
        for i, f in zip(idx, flags, strict=True):
            ok[i] = bool(f)
    for (p, _), good in zip(checked, ok, strict=True):
        if not good:
            return p
    return None


def finite_flags(obj: nn.Module | Any, *, states_only: bool = False) -> list[tuple[str, Tensor]]:
    """What :func:`nonfinite` checks, as ``(path, flag)`` pairs, without reading the device.

    Each flag is a 0-dim bool tensor on its tensor's device, ``True`` when every value is
    finite. A trainer can fold them into device-side counters every batch and read them once
    per epoch (no host sync per batch).

    Args:
        obj: a model, or states/tensors (as for :func:`nonfinite`).
        states_only: for a model, only the carried state (inside :func:`stepwise` or
            :func:`keep_state`), not the parameters and buffers.

    Returns:
        ``[(path, flag), ...]`` in the order :func:`nonfinite` checks them.
    """
    from torch.nn.parameter import is_lazy

    found: list[tuple[str, Tensor]] = []
    if isinstance(obj, nn.Module):
        for name, m in _stateful(obj):
            prefix = "" if name == type(m).__name__ and m is obj else name
            if isinstance(m, Neuron) and not states_only:
                for n, t in (*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)):
                    found.append((f"{prefix}.{n}" if prefix else n, t))
            for holder in (m._stream, getattr(m, "_kept", None)):
                if holder is not None and holder.state is not None:
                    _tensors(holder.state, f"{prefix}.state" if prefix else "state", found)
    else:
        _tensors(obj, "", found)
    return [
        (p, torch.isfinite(t.detach()).all())
        for p, t in found
        if (t.is_floating_point() or t.is_complex()) and not t.is_meta and not is_lazy(t)
    ]
