"""The one time loop: run any step function over the leading (time) axis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["scan", "scan_trace"]

StepFn = Callable[[Tensor, Any, Any, Any], tuple[Tensor, Any]]


def scan(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[Tensor, Any]:
    """Reference multi-step run of ``step`` over ``xs`` (time-first).

    Args:
        step: a neuron step function ``step(x, state, params, options) -> (out, state)``.
        xs: ``[T, B, *features]``.
        state: initial state (NamedTuple of ``[B, *features]`` tensors).
        params: the step's parameter NamedTuple.
        options: the step's options.

    Returns:
        ``(outs [T, B, *features], final_state)``.

    Example:
        >>> import torch
        >>> from spikekit.neurons import IFParams, IFState, Options, if_step
        >>> p = IFParams(torch.tensor(1.0), torch.tensor(0.0))
        >>> zs, s = scan(if_step, torch.full((3, 1), 0.6), IFState(torch.zeros(1)), p, Options())
        >>> zs.flatten(), s.v
        (tensor([0., 1., 0.]), tensor([0.6000]))
    """
    outs = []
    for x in xs.unbind(0):
        out, state = step(x, state, params, options)
        outs.append(out)
    return torch.stack(outs), state


def scan_trace(step: StepFn, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[Tensor, Any]:
    """Like :func:`scan` but returns every intermediate state, stacked: ``(outs, states)``.

    ``states`` has the state's type with fields ``[T, B, *features]`` (the state *after*
    each step); its last slice is the final state.
    """
    outs, states = [], []
    for x in xs.unbind(0):
        out, state = step(x, state, params, options)
        outs.append(out)
        states.append(state)
    return torch.stack(outs), type(state)(*(torch.stack(f) for f in zip(*states, strict=True)))
