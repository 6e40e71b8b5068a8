"""Activity regularisers: firing-rate sparsity, target firing rates, membrane bounds.

Two ways in:

* functions on tensors you already hold (:func:`l1_rate`, :func:`target_rate`,
  :func:`membrane_bounds`, and snntorch's :class:`l1_rate_sparsity`);
* :class:`ActivityRecorder`, a context manager that attaches to the neurons of a model and
  keeps only running sums while the model runs, so the penalties of every hidden layer are
  available without returning or storing their spike trains.

How the recorder sees the network: spikes are each neuron module's *output*, so a forward
hook on every neuron found by :func:`spikekit.neurons_of` adds the spikes of each call to a
per-neuron sum (a ``[*features]`` tensor per layer; the graph is kept unless ``detach=True``,
so the penalties are differentiable). The membrane is internal state, not an output, so a
hook cannot see it; the public way to observe it is :func:`spikekit.record`. The recorder
therefore runs ``spk.record(neuron, detach=False)`` for the chosen layers only when
``v_bounds`` is given, and on exit reduces each trace to one scalar penalty and drops the
trace. (While the block runs those traces exist anyway: autograd keeps every step's
membrane for the backward pass.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ActivityRecorder", "l1_rate", "l1_rate_sparsity", "membrane_bounds", "target_rate"]


def _seq(xs: Tensor, who: str) -> Tensor:
    if not isinstance(xs, Tensor) or xs.ndim < 2:
        got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
        raise ValueError(f"{who}: expected a sequence [T, B, *features], got {got}")
    return xs


def l1_rate(zs: Tensor) -> Tensor:
    """L1 firing-rate sparsity: the mean spike count per neuron and step, ``mean z``.

    Spikes are non-negative, so their L1 norm is their sum; the plain mean (rather than
    ``mean |z|``) keeps the gradient ``1 / N`` at silent steps too, like snntorch's
    ``l1_rate_sparsity`` (``sum z``), instead of the zero gradient of ``|z|`` at 0.

    Args:
        zs: spikes ``[T, B, *features]``.

    Returns:
        Scalar tensor (differentiable).

    Example:
        >>> import torch
        >>> l1_rate(torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]]))
        tensor(0.5000)
    """
    return _seq(zs, "l1_rate").mean()


class l1_rate_sparsity:
    """snntorch's ``SF.l1_rate_sparsity(Lambda)``: ``Lambda * sum(z)`` (total spike count).

    Args:
        Lambda: regularisation strength.

    Example:
        >>> import torch
        >>> l1_rate_sparsity(0.5)(torch.ones(2, 3, 4))
        tensor(12.)
    """

    def __init__(self, Lambda: float = 1e-5) -> None:
        self.Lambda = Lambda
        self.__name__ = "l1_rate_sparsity"

    def __call__(self, zs: Tensor) -> Tensor:
        return self.Lambda * torch.sum(zs)

    def __repr__(self) -> str:
        return f"l1_rate_sparsity(Lambda={self.Lambda})"


def _rate_penalty(rates: Tensor, target: float, per_neuron: bool) -> Tensor:
    if per_neuron:
        return (rates - target).square().mean()
    return (rates.mean() - target).square()


def target_rate(zs: Tensor, target: float, *, per_neuron: bool = True) -> Tensor:
    """Squared distance of the firing rate from a target rate.

    Math:
        ``r_n = mean_{t,b} z_{t,b,n}``; ``per_neuron``: ``mean_n (r_n - target)^2``;
        otherwise the layer average: ``(mean_n r_n - target)^2``.

    Args:
        zs: spikes ``[T, B, *features]``.
        target: desired spikes per step, in [0, 1].
        per_neuron: penalise every neuron's rate, not only the layer's mean rate.

    Returns:
        Scalar tensor.

    Example:
        >>> import torch
        >>> zs = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])  # rates 1 and 0
        >>> target_rate(zs, 0.5), target_rate(zs, 0.5, per_neuron=False)
        (tensor(0.2500), tensor(0.))
    """
    _check_target(target, "target_rate")
    zs = _seq(zs, "target_rate")
    return _rate_penalty(zs.mean((0, 1)), target, per_neuron)


def _check_target(target: float, who: str) -> None:
    if not 0 <= target <= 1:
        raise ValueError(f"{who}: a target firing rate must lie in [0, 1] spikes per step, got {target!r}")


def membrane_bounds(vs: Tensor, lo: float = -1.0, hi: float = 1.0) -> Tensor:
    """Quadratic penalty on the membrane leaving ``[lo, hi]``.

    Math:
        ``mean (relu(v - hi)^2 + relu(lo - v)^2)`` over time, batch and neurons.

    Args:
        vs: membrane trace ``[T, B, *features]``.
        lo, hi: allowed range (``lo < hi``).

    Returns:
        Scalar tensor; zero while the membrane stays inside the bounds.

    Example:
        >>> import torch
        >>> membrane_bounds(torch.tensor([[-3.0, 0.0, 2.0]]), -1.0, 1.0)
        tensor(1.6667)
    """
    if not lo < hi:
        raise ValueError(f"membrane_bounds: need lo < hi, got lo={lo!r}, hi={hi!r}")
    vs = _seq(vs, "membrane_bounds")
    return (F.relu(vs - hi).square() + F.relu(lo - vs).square()).mean()


class ActivityRecorder:
    """Accumulate per-layer spike statistics (and optionally membrane penalties) of a model.

    Use as a context manager around the forward pass(es); the hooks are removed on exit.
    Only running sums are kept: per neuron, the number of spikes and of steps seen.

    Args:
        model: the network; every neuron inside it (``spk.neurons_of``) is watched.
        layers: names (as in ``spk.neurons_of``) to watch; default all neurons.
        v_bounds: ``(lo, hi)`` to also compute :func:`membrane_bounds` per layer (available
            after the block ends; see the module docstring for how the membrane is observed).
        detach: keep no graph (for monitoring); default keeps it, so penalties train.

    After (or, for spike statistics, during) the block:

    * :meth:`rates` — per-layer per-neuron firing rates ``[*features]``;
    * :meth:`l1_rate` — sum over layers of the mean firing rate;
    * :meth:`target_rate` — sum over layers of :func:`target_rate` penalties;
    * :meth:`membrane_bounds` — sum over layers of :func:`membrane_bounds` penalties;
    * :meth:`firing_rates` — per-layer mean rates as floats.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), spk.LIF(), torch.nn.Linear(4, 2), spk.LIF())
        >>> with ActivityRecorder(net, v_bounds=(-1.0, 1.0)) as act:
        ...     out = net(torch.rand(5, 8, 3))
        >>> sorted(act.rates()), act.rates()["1"].shape
        (['1', '3'], torch.Size([4]))
        >>> loss = act.l1_rate() + act.target_rate(0.1) + act.membrane_bounds()
        >>> loss.backward()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Iterable[str] | None = None,
        v_bounds: tuple[float, float] | None = None,
        detach: bool = False,
    ) -> None:
        from spikekit.modes import neurons_of

        found = dict(neurons_of(model))
        if layers is not None:
            layers = list(layers)
            missing = [n for n in layers if n not in found]
            if missing:
                raise ValueError(
                    f"ActivityRecorder: no neuron named {missing} in the model; neurons: {sorted(found)}"
                )
            found = {n: found[n] for n in layers}
        if not found:
            raise ValueError("ActivityRecorder: the model contains no spikekit neurons to record")
        if v_bounds is not None and not v_bounds[0] < v_bounds[1]:
            raise ValueError(f"ActivityRecorder: v_bounds must be (lo, hi) with lo < hi, got {v_bounds!r}")
        self._neurons = found
        self.v_bounds = v_bounds
        self.detach = bool(detach)
        self.spike_sums: dict[str, Tensor] = {}
        self.steps: dict[str, int] = {}
        self.membrane_penalties: dict[str, Tensor] = {}
        self._handles: list[Any] = []
        self._stack: contextlib.ExitStack | None = None
        self._recordings: dict[str, Any] = {}

    # ------------------------------------------------------------------ scope
    def __enter__(self) -> ActivityRecorder:
        if self._stack is not None:
            raise RuntimeError("ActivityRecorder: already active; use one `with` block at a time")
        from spikekit.modes import record

        self._stack = contextlib.ExitStack()
        try:
            for name, m in self._neurons.items():
                self._handles.append(m.register_forward_hook(self._hook(name)))
            if self.v_bounds is not None:
                for name, m in self._neurons.items():
                    self._recordings[name] = self._stack.enter_context(record(m, detach=self.detach))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()
        if exc_type is None and self.v_bounds is not None:
            lo, hi = self.v_bounds
            for name, rec in self._recordings.items():
                if rec:
                    trace = next(iter(rec.values())).v
                    self.membrane_penalties[name] = membrane_bounds(trace, lo, hi)
        self._recordings = {}  # drop the traces: only the scalar penalties stay

    def _close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _hook(self, name: str) -> Any:
        neuron = self._neurons[name]

        def hook(module: nn.Module, inputs: Any, out: Tensor) -> None:
            # Inside spk.stepwise a call is one step [B, *features]; otherwise a sequence
            # [T, B, *features] (or [B, T, ...]): both leading dims are summed either way.
            lead = 1 if neuron.streaming else 2
            z = out.detach() if self.detach else out
            s = z.sum(tuple(range(lead)))
            n = int(torch.tensor(z.shape[:lead]).prod())
            self.spike_sums[name] = self.spike_sums[name] + s if name in self.spike_sums else s
            self.steps[name] = self.steps.get(name, 0) + n

        return hook

    # ------------------------------------------------------------------ statistics
    def rates(self) -> dict[str, Tensor]:
        """Per-neuron firing rates ``[*features]`` (spikes per step) of every layer seen so far."""
        return {n: s / self.steps[n] for n, s in self.spike_sums.items()}

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate of each layer, as floats."""
        return {n: float(r.detach().mean()) for n, r in self.rates().items()}

    def _require_data(self, who: str) -> dict[str, Tensor]:
        r = self.rates()
        if not r:
            raise RuntimeError(f"ActivityRecorder.{who}: no forward pass was recorded")
        return r

    def l1_rate(self) -> Tensor:
        """Sum over layers of the mean firing rate: :func:`l1_rate` of every layer's spikes."""
        return torch.stack([r.mean() for r in self._require_data("l1_rate").values()]).sum()

    def target_rate(self, target: float | dict[str, float], *, per_neuron: bool = True) -> Tensor:
        """Sum over layers of :func:`target_rate` penalties.

        Args:
            target: one rate for every layer, or ``{layer name: rate}`` (layers not named are
                not penalised).
            per_neuron: see :func:`target_rate`.
        """
        rates = self._require_data("target_rate")
        targets = target if isinstance(target, dict) else dict.fromkeys(rates, target)
        unknown = set(targets) - set(rates)
        if unknown:
            raise ValueError(
                f"ActivityRecorder.target_rate: unknown layers {sorted(unknown)}; recorded: {sorted(rates)}"
            )
        terms = []
        for name, t in targets.items():
            _check_target(t, "ActivityRecorder.target_rate")
            terms.append(_rate_penalty(rates[name], t, per_neuron))
        return torch.stack(terms).sum()

    def membrane_bounds(self) -> Tensor:
        """Sum over layers of :func:`membrane_bounds` penalties (after the block has ended)."""
        if self.v_bounds is None:
            raise RuntimeError(
                "ActivityRecorder.membrane_bounds: construct the recorder with v_bounds=(lo, hi)"
            )
        if not self.membrane_penalties:
            raise RuntimeError(
                "ActivityRecorder.membrane_bounds: no membrane recorded yet; it is available after the `with` block"
            )
        return torch.stack(list(self.membrane_penalties.values())).sum()
