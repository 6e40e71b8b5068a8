"""The one switch a time-aware layer reads: sequence mode or :func:`spikekit.stepwise`.

A layer cannot tell one time step ``[B, C, H, W]`` from a sequence ``[T, B, C, W]`` by its
shape alone, so it is told: :func:`spikekit.stepwise` gives every :class:`StepAware` layer of
the model it names (and every neuron) a stream slot for the duration of the block, exactly as
it does for neurons. No global state: the slot lives on the module and the block removes it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from spikekit.neurons._base import _Stream

__all__ = ["StepAware"]


class StepAware(nn.Module):
    """Base of layers whose call form depends on the mode.

    Outside :func:`spikekit.stepwise` (sequence mode) a call takes ``[T, B, *features]``;
    inside, one time step ``[B, *features]``. Layers that carry something between steps (the
    step index of :class:`~spikekit.layers.BNTT2d`, the mask of
    :class:`~spikekit.layers.SequenceDropout`) keep it in ``self._stream.state``, which
    :func:`spikekit.reset` clears like a neuron's state.
    """

    _stream: _Stream | None = None

    @property
    def streaming(self) -> bool:
        """Whether the layer is inside :func:`spikekit.stepwise` (a call is then one step)."""
        return self._stream is not None

    def __getstate__(self) -> dict[str, Any]:
        # The stream slot is scoped to a stepwise block; a copy or pickle never carries it.
        d = dict(super().__getstate__())
        d.pop("_stream", None)
        return d


def slice_hint(who: str, got: tuple[int, ...]) -> str:
    """The fix for a time slice given in sequence mode (names ``stepwise``)."""
    return (
        f"{who}: got {got}, which is one time step [B, *features], outside spikekit.stepwise, where a "
        f"call takes a whole sequence [T, B, *features]. To run one step at a time, call the model "
        f"inside `with spikekit.stepwise(model): ...`; to run a sequence, give [T, B, *features]"
    )


def sequence_hint(who: str, got: tuple[int, ...]) -> str:
    """The fix for a sequence given inside ``stepwise``."""
    return (
        f"{who}: got {got} inside spikekit.stepwise, where one call is one time step "
        f"[B, *features]; call it once per step with xs[t], or leave the stepwise block to run "
        f"the whole sequence [T, B, *features] at once"
    )
