"""Recurrence as a wrapper: feed a neuron's previous spikes back through a module."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from spikekit.neurons import Neuron

__all__ = ["Recurrent", "RecurrentState"]


class RecurrentState(NamedTuple):
    """State of :class:`Recurrent`: the neuron's own state and its last output ``z`` ``[B, *features]``."""

    neuron: Any
    z: Tensor


class Recurrent(nn.Module):
    """A neuron whose input at step ``t`` also receives its own output of step ``t - 1``.

    norse's ``LIFRecurrentCell`` is ``nn.Linear(in, H)`` followed by
    ``Recurrent(LIF(...), nn.Linear(H, H, bias=False))``. The loop calls ``neuron.step``, so
    every neuron kind (and its ANN mode, which turns this into an Elman RNN) works unchanged.

    Math:
        ``(z_t, s_t) = neuron.step(x_t + recurrent(z_{t-1}), s_{t-1})`` with ``z_{-1} = 0``.

    Args:
        neuron: the neuron module.
        recurrent: maps ``[B, *features]`` to ``[B, *features]`` (usually ``nn.Linear(H, H)``).
        batch_first: take and return ``[B, T, *features]``.

    Shape:
        ``xs``: ``[T, B, *features]`` -> ``[T, B, *features]``; state: :class:`RecurrentState`.

    Example:
        >>> import torch, spikekit as spk
        >>> rec = Recurrent(spk.LIF(), torch.nn.Linear(3, 3, bias=False))
        >>> zs, state = rec.scan(torch.rand(5, 2, 3))
        >>> zs.shape, state.z.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 3]))
    """

    def __init__(self, neuron: Neuron, recurrent: nn.Module, *, batch_first: bool = False) -> None:
        super().__init__()
        if not isinstance(neuron, Neuron):
            raise TypeError(f"Recurrent: neuron must be a spikekit Neuron, got {type(neuron).__name__}")
        if not isinstance(recurrent, nn.Module):
            raise TypeError(f"Recurrent: recurrent must be an nn.Module, got {type(recurrent).__name__}")
        self.neuron = neuron
        self.recurrent = recurrent
        self.batch_first = bool(batch_first)

    def initial_state(self, x: Tensor) -> RecurrentState:
        """A fresh state for one time slice ``x`` ``[B, *features]``: neuron at rest, no spikes."""
        return RecurrentState(self.neuron.initial_state(x), torch.zeros_like(x))

    def step(self, x: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """One step: ``(z, new_state)`` for input ``x`` ``[B, *features]``."""
        if state is None:
            state = self.initial_state(x)
        elif not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(
                f"Recurrent: state must be a RecurrentState(neuron, z), got {type(state).__name__}"
            )
        feedback = self.recurrent(state.z)
        if feedback.shape != x.shape:
            raise ValueError(
                f"Recurrent: the recurrent module maps spikes {tuple(state.z.shape)} to "
                f"{tuple(feedback.shape)}, but the input step has shape {tuple(x.shape)}"
            )
        z, s = self.neuron.step(x + feedback, state.neuron)
        return z, RecurrentState(s, z)

    def scan(self, xs: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """Run over a sequence: ``(zs, final_state)``.

        Args:
            xs: ``[T, B, *features]`` (``[B, T, ...]`` with ``batch_first``).
            state: initial :class:`RecurrentState`, or ``None`` for a fresh one.
        """
        if not isinstance(xs, Tensor) or xs.ndim < 3 or xs.shape[0] == 0:
            layout = "[B, T, *features]" if self.batch_first else "[T, B, *features]"
            got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
            raise ValueError(f"Recurrent: expected {layout} with T >= 1, got {got}")
        if self.batch_first:
            xs = xs.transpose(0, 1)
        zs, states = [], []
        for x in xs.unbind(0):
            z, state = self.step(x, state)
            zs.append(z)
            states.append(state.neuron)
        out = torch.stack(zs)
        recorder = self.neuron._recorder
        if recorder is not None:  # record() sees this neuron like any other: states and spikes
            recorder.append((type(states[0])(*(torch.stack(f) for f in zip(*states, strict=True))), out))
        return (out.transpose(0, 1) if self.batch_first else out), state

    def forward(self, xs: Tensor) -> Tensor:
        """Outputs from a fresh state; inside :func:`spikekit.stepwise` one step with carried state."""
        stream = self.neuron._stream
        if stream is not None:
            # The neuron's stream slot holds the whole recurrent state while stepping.
            z, stream.state = self.step(xs, stream.state)
            recorder = self.neuron._recorder
            if recorder is not None:  # one step: a time axis of length 1, as Neuron.forward records
                recorder.append(
                    (
                        type(stream.state.neuron)(*(s.unsqueeze(0) for s in stream.state.neuron)),
                        z.unsqueeze(0),
                    )
                )
            return z
        return self.scan(xs)[0]

    def extra_repr(self) -> str:
        return "batch_first=True" if self.batch_first else ""

    def nir_wiring(self) -> tuple[dict[str, nn.Module], list[tuple[str, str]]]:
        """NIR wiring: a cycle ``neuron -> recurrent -> neuron`` (the feedback of the previous step).

        :func:`spikekit.to_nir` converts each child with its own mapping and joins them by
        these edges (``"input"`` and ``"output"`` are this module's own ends).

        A NIR importer runs the cycle one step late, as :meth:`step` does:
        ``neuron`` sees ``x_t + recurrent(z_{t-1})``.

        Returns:
            ``(children, edges)``: child modules by name, and directed edges between the names.

        Shape:
            ``[*features]`` -> ``[*features]``.

        Example:
            >>> import spikekit as spk
            >>> Recurrent(spk.LIF(), nn.Linear(3, 3, bias=False)).nir_wiring()[1][2]
            ('recurrent', 'neuron')
        """
        edges = [("input", "neuron"), ("neuron", "recurrent"), ("recurrent", "neuron"), ("neuron", "output")]
        return {"neuron": self.neuron, "recurrent": self.recurrent}, edges
