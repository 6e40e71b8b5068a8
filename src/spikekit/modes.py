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
    found = _stateful(model)
    for name, m in found:
        if m._stream is not None:
            raise RuntimeError(f"stepwise: module {name!r} is already inside a stepwise block")
    try:
        for _, m in found:
            m._stream = _Stream()
        yield model
    finally:
        for _, m in found:
            m._stream = None


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
