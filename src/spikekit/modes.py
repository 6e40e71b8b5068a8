"""Scoped modes over a model: step-by-step streaming, recording, reset, and ANN/SNN switching.

Each function touches only the model it is given (never a global registry), and the
scoped ones undo themselves when the ``with`` block ends, even on error.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from spikekit import surrogate as _sg
from spikekit.neurons._base import Neuron, _Stream

__all__ = [
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


@contextlib.contextmanager
def stepwise(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` one time step per call, carrying neuron state between calls.

    Inside the block each neuron's ``forward`` takes one slice ``[B, *features]`` and keeps
    its state; :func:`reset` clears it (e.g. between batches). The state is dropped when the
    block ends. This is the snntorch ``init_hidden`` / spikingjelly single-step style, scoped.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF())
        >>> with spk.stepwise(net):
        ...     outs = [net(torch.ones(4, 2)) for _ in range(5)]
        >>> torch.stack(outs).shape
        torch.Size([5, 4, 3])
    """
    found = neurons_of(model)
    for name, m in found:
        if m._stream is not None:
            raise RuntimeError(f"stepwise: neuron {name!r} is already inside a stepwise block")
    try:
        for _, m in found:
            m._stream = _Stream()
        yield model
    finally:
        for _, m in found:
            m._stream = None


def reset(model: nn.Module) -> None:
    """Clear the carried state of every neuron in ``model`` (only meaningful inside :func:`stepwise`)."""
    for _, m in neurons_of(model):
        if m._stream is not None:
            m._stream.state = None


def detach_state(model: nn.Module) -> None:
    """Cut the graph of every carried state in ``model`` (truncated BPTT inside :func:`stepwise`)."""
    for _, m in neurons_of(model):
        if m._stream is not None and m._stream.state is not None:
            m._stream.state = type(m._stream.state)(*(t.detach() for t in m._stream.state))


class Recording(dict):
    """Mapping ``neuron name -> state trace`` filled by :func:`record`.

    Each value is the neuron's ``State`` type whose fields are ``[T, B, *features]``
    (the state after each step; for most neurons ``.v`` is the membrane). Several calls
    inside one block are concatenated along time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._raw: dict[str, list[Any]] = {}

    def _finish(self) -> None:
        for name, chunks in self._raw.items():
            if chunks:
                self[name] = type(chunks[0])(*(torch.cat(f) for f in zip(*chunks, strict=True)))


@contextlib.contextmanager
def record(model: nn.Module, *, detach: bool = True) -> Iterator[Recording]:
    """Record every neuron's state trace while the block runs; return types do not change.

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
        >>> rec["1"].v.shape
        torch.Size([5, 4, 3])
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
    def append(self, state: Any) -> None:
        super().append(type(state)(*(t.detach() for t in state)))


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
