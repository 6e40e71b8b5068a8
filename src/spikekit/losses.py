"""Losses on time-first network outputs ``[T, B, C]`` and integer labels ``[B]``.

Each loss is a small callable built with its options and then called as
``loss_fn(outputs, targets)``, the calling convention of ``snntorch.functional`` (whose
names and defaults the snntorch family below keeps). ``batch_first=True`` takes ``[B, T, C]``.

Shared options:

* ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one loss per sample, ``[B]``).
* ``weight``: per-class weights ``[C]``; each sample's loss is multiplied by the weight of its
  label before the reduction (so ``"mean"`` is the plain mean of the weighted losses, as in
  snntorch, not torch's weight-normalised mean).

Reference each loss matches:

=========================  ====================================================================
``mse_count_loss``         snntorch ``SF.mse_count_loss``
``ce_count_loss``          snntorch ``SF.ce_count_loss``
``ce_rate_loss``           snntorch ``SF.ce_rate_loss``
``ce_max_membrane_loss``   snntorch ``SF.ce_max_membrane_loss``
``mse_membrane_loss``      snntorch ``SF.mse_membrane_loss``
``mse_temporal_loss``      snntorch ``SF.mse_temporal_loss`` (single spike)
``ce_temporal_loss``       snntorch ``SF.ce_temporal_loss``
``mse_rate_loss``          spikingjelly tutorial: ``F.mse_loss(rate, one_hot(label))``
``tet_loss``               Deng et al. 2022, "Temporal Efficient Training" (TET), with the MSE term
=========================  ====================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spikekit.decoding import first_spike_time
from spikekit.encoding import check_labels, target_one_hot, target_times

__all__ = [
    "ce_count_loss",
    "ce_max_membrane_loss",
    "ce_rate_loss",
    "ce_temporal_loss",
    "mse_count_loss",
    "mse_membrane_loss",
    "mse_rate_loss",
    "mse_temporal_loss",
    "tet_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def population_sum(counts: Tensor, num_classes: int, who: str) -> Tensor:
    """Sum ``[B, N]`` outputs over ``num_classes`` consecutive groups of ``N / num_classes``."""
    n = counts.shape[-1]
    if not num_classes or n % num_classes:
        raise ValueError(
            f"{who}: population_code needs num_classes dividing the {n} outputs, got num_classes={num_classes!r}"
        )
    return counts.reshape(*counts.shape[:-1], num_classes, n // num_classes).sum(-1)


class _Loss:
    """Common part: layout and label checks, per-class weights and the reduction."""

    _options: tuple[str, ...] = ()

    def __init__(
        self, reduction: str = "mean", weight: Tensor | None = None, batch_first: bool = False
    ) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        self.reduction = reduction
        self.weight = None if weight is None else torch.as_tensor(weight)
        self.batch_first = bool(batch_first)
        self.__name__ = type(self).__name__

    def __repr__(self) -> str:
        opts = [f"{k}={getattr(self, k)!r}" for k in self._options]
        if self.reduction != "mean":
            opts.append(f"reduction={self.reduction!r}")
        if self.weight is not None:
            opts.append(f"weight={self.weight.tolist()}")
        if self.batch_first:
            opts.append("batch_first=True")
        return f"{type(self).__name__}({', '.join(opts)})"

    def _outputs(self, xs: Tensor) -> Tensor:
        who = type(self).__name__
        layout = "[B, T, C]" if self.batch_first else "[T, B, C]"
        if not isinstance(xs, Tensor):
            raise TypeError(f"{who}: outputs must be a torch.Tensor {layout}, got {type(xs).__name__}")
        if xs.ndim != 3:
            raise ValueError(f"{who}: outputs must have shape {layout}, got {tuple(xs.shape)}")
        if self.batch_first:
            xs = xs.transpose(0, 1)
        if xs.shape[0] == 0:
            raise ValueError(f"{who}: outputs have no time steps (T = 0), shape {tuple(xs.shape)} ({layout})")
        if xs.shape[1] == 0:
            # a mean over no samples is NaN, which would reach the optimiser as a loss
            raise ValueError(
                f"{who}: outputs have an empty batch (B = 0), shape {tuple(xs.shape)} ({layout}); "
                f"skip empty batches (e.g. drop_last=True in the DataLoader) before the loss"
            )
        return xs if xs.is_floating_point() else xs.float()

    def _labels(self, y: Tensor, num_classes: int, batch: int) -> Tensor:
        return check_labels(y, num_classes, type(self).__name__, batch)

    def _finish(self, per_sample: Tensor, y: Tensor | None) -> Tensor:
        if self.weight is not None:
            if y is None:
                raise ValueError(f"{type(self).__name__}: weight needs class-label targets")
            w = self.weight.to(per_sample)
            per_sample = per_sample * w[y]
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def _check_weight(self, num_classes: int) -> None:
        if self.weight is not None and tuple(self.weight.shape) != (num_classes,):
            raise ValueError(
                f"{type(self).__name__}: weight must have shape [C] = [{num_classes}], got {tuple(self.weight.shape)}"
            )

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError


def _ce_per_sample(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy per sample for ``[B, C]`` or per (step, sample) for ``[T, B, C]``."""
    if logits.ndim == 2:
        return F.cross_entropy(logits, y, reduction="none")
    T, B, C = logits.shape
    return F.cross_entropy(logits.reshape(T * B, C), y.repeat(T), reduction="none").view(T, B)


class ce_rate_loss(_Loss):
    """Cross-entropy of the output at every step, averaged over time (snntorch ``ce_rate_loss``).

    Math:
        ``L_b = (1/T) sum_t CE(z_t[b], y_b)``, ``CE(s, y) = -log softmax(s)_y``.

    Args:
        reduction, weight, batch_first: see the module docstring.

    Shape:
        outputs ``[T, B, C]`` (spikes), targets ``[B]`` labels.

    Example:
        >>> import torch
        >>> ce_rate_loss()(torch.zeros(5, 2, 4), torch.tensor([0, 3])).item() == torch.log(torch.tensor(4.0)).item()
        True
    """

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        zs = self._outputs(outputs)
        y = self._labels(targets, zs.shape[-1], zs.shape[1])
        self._check_weight(zs.shape[-1])
        return self._finish(_ce_per_sample(zs, y).mean(0), y)


class ce_count_loss(_Loss):
    """Cross-entropy of the spike counts (snntorch ``ce_count_loss``).

    Math:
        ``L_b = CE(sum_t z_t[b], y_b)``; with ``population_code`` the ``N`` outputs are summed in
        ``num_classes`` consecutive groups first.

    Args:
        population_code: more outputs than classes, grouped per class.
        num_classes: number of classes (needed with ``population_code``).
        reduction, weight, batch_first: see the module docstring.

    Shape:
        outputs ``[T, B, N]`` spikes, targets ``[B]`` labels.
    """

    _options = ("population_code", "num_classes")

    def __init__(
        self, population_code: bool = False, num_classes: int | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.population_code = bool(population_code)
        self.num_classes = num_classes

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        zs = self._outputs(outputs)
        counts = zs.sum(0)
        if self.population_code:
            counts = population_sum(counts, self.num_classes or 0, type(self).__name__)
        y = self._labels(targets, counts.shape[-1], zs.shape[1])
        self._check_weight(counts.shape[-1])
        return self._finish(_ce_per_sample(counts, y), y)


class ce_max_membrane_loss(_Loss):
    """Cross-entropy of the maximum membrane over time (snntorch ``ce_max_membrane_loss``).

    Math:
        ``L_b = CE(max_t v_t[b], y_b)``.

    Shape:
        outputs ``[T, B, C]`` membrane, targets ``[B]`` labels.
    """

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        vs = self._outputs(outputs)
        y = self._labels(targets, vs.shape[-1], vs.shape[1])
        self._check_weight(vs.shape[-1])
        return self._finish(_ce_per_sample(vs.max(0).values, y), y)


class mse_count_loss(_Loss):
    """Mean squared error between spike counts and target counts, over ``T`` (snntorch ``mse_count_loss``).

    Math:
        ``L_b = (1/T) mean_c (sum_t z_t[b, c] - n_{b,c})^2`` with ``n = int(T * correct_rate)``
        for the label's class and ``int(T * incorrect_rate)`` otherwise
        (:func:`~spikekit.encoding.target_counts`). With ``population_code`` counts are summed
        per class group and the targets scaled by the group size.

    Args:
        correct_rate: desired firing rate (spikes per step) of the correct class.
        incorrect_rate: desired firing rate of the other classes.
        population_code, num_classes: as :class:`ce_count_loss`.
        reduction, weight, batch_first: see the module docstring.

    Shape:
        outputs ``[T, B, N]`` spikes, targets ``[B]`` labels.

    Example:
        >>> import torch
        >>> zs = torch.zeros(10, 1, 2)
        >>> zs[:8, 0, 1] = 1  # class 1 fires 8 times, class 0 never
        >>> round(mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)(zs, torch.tensor([1])).item(), 6)
        0.2
    """

    _options = ("correct_rate", "incorrect_rate", "population_code", "num_classes")

    def __init__(
        self,
        correct_rate: float = 1.0,
        incorrect_rate: float = 0.0,
        population_code: bool = False,
        num_classes: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        for name, r in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
            if not 0 <= r <= 1:
                raise ValueError(f"mse_count_loss: {name} must lie in [0, 1], got {r!r}")
        self.correct_rate = correct_rate
        self.incorrect_rate = incorrect_rate
        self.population_code = bool(population_code)
        self.num_classes = num_classes

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        err, y = self.class_errors(outputs, targets)
        return self._finish(err.mean(-1), y)

    def class_errors(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The per-class terms ``(count - target)^2 / T`` ``[B, C]`` and the labels ``[B]``."""
        zs = self._outputs(outputs)
        T, n = zs.shape[0], zs.shape[-1]
        counts = zs.sum(0)
        scale = 1.0
        if self.population_code:
            counts = population_sum(counts, self.num_classes or 0, type(self).__name__)
            scale = n / counts.shape[-1]
        C = counts.shape[-1]
        y = self._labels(targets, C, zs.shape[1])
        self._check_weight(C)
        # snntorch truncates the scaled target counts to whole spikes
        on, off = int(T * self.correct_rate * scale), int(T * self.incorrect_rate * scale)
        target = target_one_hot(y, C, on=on, off=off).to(counts)
        return (counts - target).square() / T, y


class mse_membrane_loss(_Loss):
    """Mean squared error between the membrane and a one-hot target at every step (snntorch
    ``mse_membrane_loss``).

    Math:
        ``L_b = (1/T) sum_t mean_c (v_t[b, c] - u_{t,b,c})^2`` with ``u = on_target`` for the
        label's class and ``off_target`` otherwise; with ``time_var_targets`` the labels are
        ``[T, B]`` (one per step).

    snntorch computes the target as ``max(one_hot * on, off)`` when ``on > off``, which turns a
    negative ``off_target`` into 0; here the off value is used as given (same result for
    ``off_target >= 0``).

    Args:
        time_var_targets: labels vary over time (``[T, B]``; snntorch 1.0's version of this
            option raises on such labels).
        on_target, off_target: membrane targets for the correct and other classes.
        reduction, weight, batch_first: see the module docstring (no ``weight`` with
            ``time_var_targets``).

    Shape:
        outputs ``[T, B, C]`` membrane, targets ``[B]`` (or ``[T, B]``) labels.
    """

    _options = ("time_var_targets", "on_target", "off_target")

    def __init__(
        self,
        time_var_targets: bool = False,
        on_target: float = 1.0,
        off_target: float = 0.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if time_var_targets and self.weight is not None:
            raise ValueError("mse_membrane_loss: weight is not supported with time_var_targets=True")
        self.time_var_targets = bool(time_var_targets)
        self.on_target = on_target
        self.off_target = off_target

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        vs = self._outputs(outputs)
        T, B, C = vs.shape
        self._check_weight(C)
        if self.time_var_targets:
            if not isinstance(targets, Tensor) or tuple(targets.shape) != (T, B):
                got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
                raise ValueError(
                    f"mse_membrane_loss: time-varying labels must have shape [T, B] = [{T}, {B}], got {got}"
                )
            y = check_labels(targets, C, "mse_membrane_loss")
            u = target_one_hot(y, C, on=self.on_target, off=self.off_target).to(vs)
            return self._finish((vs - u).square().mean((0, 2)), None)
        y = self._labels(targets, C, B)
        u = target_one_hot(y, C, on=self.on_target, off=self.off_target).to(vs)
        return self._finish((vs - u).square().mean((0, 2)), y)


class mse_rate_loss(_Loss):
    """Mean squared error between the firing rate and the one-hot label (spikingjelly's MNIST
    tutorial: ``F.mse_loss(out_spikes.mean(0), F.one_hot(label, C))``).

    Math:
        ``L_b = mean_c (mean_t z_t[b, c] - 1[c = y_b])^2``.

    Shape:
        outputs ``[T, B, C]`` spikes, targets ``[B]`` labels.

    Example:
        >>> import torch
        >>> mse_rate_loss()(torch.ones(4, 1, 2), torch.tensor([0])).item()
        0.5
    """

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        zs = self._outputs(outputs)
        y = self._labels(targets, zs.shape[-1], zs.shape[1])
        self._check_weight(zs.shape[-1])
        return self._finish((zs.mean(0) - target_one_hot(y, zs.shape[-1]).to(zs)).square().mean(-1), y)


class _Tolerance(torch.autograd.Function):
    """Replace times within ``tolerance`` of the target by the target; identity gradient (snntorch)."""

    @staticmethod
    def forward(ctx, t: Tensor, target: Tensor, tolerance: float) -> Tensor:  # type: ignore[override]
        return torch.where((t - target).abs() < tolerance, target.to(t), t)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None, None


class mse_temporal_loss(_Loss):
    """Mean squared error on first-spike times, in units of ``T`` (snntorch ``mse_temporal_loss``).

    Math:
        ``t = first_spike_time(z)`` (silent neurons at ``T - 1``; gradient: the sign estimator of
        :func:`~spikekit.decoding.first_spike_time`); target times ``tau`` are ``on_target``
        for the label's class and ``off_target`` otherwise (negative = from the end), or given
        directly with ``target_is_time``. Times within ``tolerance`` of their target count as
        on target. ``L_b = mean_c ((t_{b,c} - tau_{b,c}) / T)^2``.

    Difference from snntorch: snntorch builds label targets as ``max(one_hot * on, off)`` when
    ``on > off``, so a negative ``off_target`` (its default ``-1``, "the last step") becomes 0
    and, with the defaults, every class is trained to fire at ``t = 0``. Here ``off_target=-1``
    means ``T - 1`` as documented there; the two agree whenever ``off_target >= 0`` or
    ``on_target <= off_target``.

    Args:
        target_is_time: targets are spike times ``[B, C]`` (or ``[C]``) instead of labels, in
            ``[-T, T - 1]`` (negative times count from the end).
        on_target, off_target: target times of the correct and other classes.
        tolerance: distance (in steps) below which a time is not penalised.
        reduction, weight, batch_first: see the module docstring.

    Shape:
        outputs ``[T, B, C]`` spikes; targets ``[B]`` labels or ``[B, C]`` times.
    """

    _options = ("target_is_time", "on_target", "off_target", "tolerance")

    def __init__(
        self,
        target_is_time: bool = False,
        on_target: int = 0,
        off_target: int = -1,
        tolerance: float = 0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if target_is_time and self.weight is not None:
            raise ValueError("mse_temporal_loss: weight needs label targets, not target_is_time=True")
        self.target_is_time = bool(target_is_time)
        self.on_target = on_target
        self.off_target = off_target
        self.tolerance = tolerance

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        zs = self._outputs(outputs)
        T, B, C = zs.shape
        self._check_weight(C)
        y: Tensor | None = None
        if self.target_is_time:
            tau = torch.as_tensor(targets).to(zs)
            if tau.shape not in ((B, C), (C,)):
                raise ValueError(
                    f"mse_temporal_loss: target times must have shape [B, C] = [{B}, {C}] or [C], got {tuple(tau.shape)}"
                )
            if tau.numel() and bool(((tau < -T) | (tau > T - 1) | tau.isnan()).any()):
                finite = tau[~tau.isnan()]
                got = (
                    f"values in [{float(finite.min()):g}, {float(finite.max()):g}]"
                    if finite.numel()
                    else "NaN"
                )
                raise ValueError(
                    f"mse_temporal_loss: target times must lie in [-T, T - 1] = [{-T}, {T - 1}] for T = {T} "
                    f"(negative times count from the end: -1 is step T - 1), got {got}"
                )
            tau = torch.where(tau < 0, tau + T, tau).expand(B, C)
        else:
            y = self._labels(targets, C, B)
            tau = target_times(y, C, T, on_time=self.on_target, off_time=self.off_target).to(zs)
        t = first_spike_time(zs, no_spike=T - 1)
        if self.tolerance:
            t = _Tolerance.apply(t, tau, float(self.tolerance))
        return self._finish(((t - tau) / T).square().mean(-1), y)


class ce_temporal_loss(_Loss):
    """Cross-entropy on inverted first-spike times: the earliest neuron wins (snntorch ``ce_temporal_loss``).

    Math:
        ``t = first_spike_time(z)`` (silent at ``T - 1``); scores ``s = -t`` (``inverse="negate"``)
        or ``s = 1 / (t + 1)`` (``"reciprocal"``); ``L_b = CE(s_b, y_b)``.

    Args:
        inverse: ``"negate"`` or ``"reciprocal"``.
        reduction, weight, batch_first: see the module docstring.

    Shape:
        outputs ``[T, B, C]`` spikes, targets ``[B]`` labels.
    """

    _options = ("inverse",)

    def __init__(self, inverse: str = "negate", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if inverse not in ("negate", "reciprocal"):
            raise ValueError(f"ce_temporal_loss: inverse must be 'negate' or 'reciprocal', got {inverse!r}")
        self.inverse = inverse

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        zs = self._outputs(outputs)
        T, B, C = zs.shape
        y = self._labels(targets, C, B)
        self._check_weight(C)
        t = first_spike_time(zs, no_spike=T - 1)
        s = -t if self.inverse == "negate" else 1 / (t + 1)
        return self._finish(_ce_per_sample(s, y), y)


class tet_loss(_Loss):
    """Temporal Efficient Training loss (Deng et al., ICLR 2022), with its MSE regulariser.

    Math:
        ``L = (1 - lamb) (1/T) sum_t CE(o_t, y) + lamb (1/T) sum_t MSE(o_t, phi)``, where
        ``MSE(o_t, phi) = mean_c (o_t[c] - phi)^2`` pulls every output towards the constant
        ``phi`` (the paper's and official code's default: 1.0, the firing threshold). The
        defaults ``lamb=1e-3, phi=1.0`` are those of the official implementation.

    Difference from snetx: ``snetx.snn.algorithm.TETLoss(criterion, y, out, lamb)`` returns
    ``lamb * CE(mean_t o_t, y) + (1 - lamb) * mean_t CE(o_t, y)``: its ``lamb`` weights the
    cross-entropy of the time-averaged output and the MSE term is absent. With ``lamb=0`` both
    reduce to ``mean_t CE(o_t, y)``, so ``tet_loss(lamb=0)`` reproduces snetx's
    ``TETLoss(..., lamb=0)`` (snetx takes ``[B, T, C]``: use ``batch_first=True``).

    Args:
        lamb: weight of the MSE term, in [0, 1].
        phi: constant target of the MSE term.
        reduction, weight, batch_first: see the module docstring (``weight`` scales each
            sample's whole loss).

    Shape:
        outputs ``[T, B, C]`` (logits or membranes at every step), targets ``[B]`` labels.

    Example:
        >>> import torch
        >>> o = torch.zeros(3, 1, 2)
        >>> round(tet_loss(lamb=0.5)(o, torch.tensor([1])).item(), 4)  # 0.5 ln 2 + 0.5 * 1
        0.8466
    """

    _options = ("lamb", "phi")

    def __init__(self, lamb: float = 1e-3, phi: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not 0 <= lamb <= 1:
            raise ValueError(f"tet_loss: lamb must lie in [0, 1], got {lamb!r}")
        self.lamb = lamb
        self.phi = phi

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        os = self._outputs(outputs)
        y = self._labels(targets, os.shape[-1], os.shape[1])
        self._check_weight(os.shape[-1])
        ce = _ce_per_sample(os, y).mean(0)
        if self.lamb == 0:
            return self._finish(ce, y)
        mse = (os - self.phi).square().mean((0, 2))
        return self._finish((1 - self.lamb) * ce + self.lamb * mse, y)
