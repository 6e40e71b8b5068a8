"""ANN -> SNN conversion: a trained ReLU network becomes a rate-coded network of soft-reset IF neurons.

The classic recipe (Cao et al. 2015; Diehl et al. 2015; Rueckauer et al. 2017; spikingjelly's
``ann2snn``, sinabs, snntoolbox):

1. copy the ANN, put it in eval mode, drop ``Dropout``/``Identity`` and fold every batch norm
   into the convolution or linear layer before it (exact in eval mode, :func:`fold_batchnorm`);
2. run calibration data through it and take, at every ReLU, a scale ``lambda``: the largest
   activation (``mode="max"``) or a robust percentile of the positive activations
   (``mode="percentile"``, 99.9 % by default: one outlier no longer slows the whole layer);
3. replace every ReLU by an IF neuron with a *soft* reset (subtract the threshold, so no charge
   above threshold is lost) whose firing rate approximates ``relu(a) / lambda`` (clipped at 1),
   either by rescaling the weights (``normalise="weights"``: ``W *= lambda_in / lambda``,
   ``b /= lambda``, thresholds 1) or by setting the threshold (``normalise="threshold"``:
   ``v_th = lambda``, ``W *= lambda_in`` so that a unit spike carries ``lambda_in`` of
   activation, biases untouched). Both give the same spikes: the membrane of one is ``lambda``
   times the other's.

The result is a plain ``nn.Sequential`` of spikekit layers on time-first ``[T, B, *features]``
input; the analog input is given at every step (:func:`spikekit.encoding.direct`).

Readout: the layers after the last ReLU are kept *accumulate-only* (no neuron): their output
at each step is the ANN's logit computed from that step's spikes, in ANN units, and
:func:`decode` averages it over time. That is the membrane of a non-leaky, non-firing
integrator divided by ``t``. Spiking output neurons would need a threshold of their own for
logits that may be negative and have no calibrated range, and would add a second
quantisation error to the class decision; the mean current keeps the sign, the scale and the
ranking of the ANN's logits, and converges to them as the hidden rates do.

Max pooling after a ReLU uses a gate (Rueckauer et al. 2017): each window passes the spikes of
the input with the largest *accumulated* spike count so far (:class:`SpikingMaxPool2d`), so
its rate tends to the largest input rate; a plain max of spikes (an OR) would overcount. A
max pool right before a ReLU is moved after it first (``relu(max(x)) == max(relu(x))``); one
before the first ReLU sees the constant analog input and stays a plain max pool.

The membrane starts at ``v_init * v_th`` (default half the threshold): the spike count after
``t`` steps of a constant input is then the *rounded* rather than the floored ``t * rate``,
which halves the worst-case quantisation error (spikingjelly's ``half_threshold``; Bu et al.
2022, "Optimal ANN-SNN conversion").
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from spikekit.layers import Flatten, TimeDistributed
from spikekit.layers._mode import StepAware
from spikekit.neurons import IF

__all__ = [
    "ConversionReport",
    "ConvertedIF",
    "LayerScale",
    "SpikingMaxPool2d",
    "UnsupportedLayerError",
    "ann_to_snn",
    "decode",
    "fold_batchnorm",
]

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
# Linear maps without parameters: they commute with averaging over time, so they act on spikes
# exactly as on rates.
_PARAM_FREE = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
)
_SUPPORTED = "Linear, Conv1d/2d/3d, BatchNorm (after a conv/linear), ReLU, AvgPool, AdaptiveAvgPool, MaxPool, Flatten, Dropout, Identity"


class UnsupportedLayerError(TypeError):
    """A layer of the ANN has no rate-coded spiking equivalent here.

    Attributes:
        name: the layer's dotted name in the ANN (``"features.3"``).
        position: its index among the ANN's leaf layers (nested ``nn.Sequential`` flattened).
        module: the layer itself.
    """

    def __init__(self, name: str, position: int, module: nn.Module, why: str) -> None:
        self.name, self.position, self.module = name, position, module
        super().__init__(f"cannot convert layer {position} ({name!r}: {module!r}): {why}")


@dataclass(frozen=True)
class LayerScale:
    """Calibration of one ReLU of the ANN and what it became.

    Attributes:
        position: index of the IF neuron in the returned ``nn.Sequential``.
        ann_name: dotted name of the ReLU in the ANN.
        after: the layer whose output the ReLU takes (after folding), e.g. ``"Conv2d(1, 32)"``.
        max: the largest activation seen in the calibration data.
        scale: the ``lambda`` used (``max``, or the percentile of the positive activations).
        v_th: the IF threshold (1 with weight normalisation, ``scale`` with threshold
            normalisation, unless the layer has no weights to carry the scale).
        clipped: fraction of the positive calibration activations above ``scale`` (they saturate
            at one spike per step); 0 for ``mode="max"``.
    """

    position: int
    ann_name: str
    after: str
    max: float
    scale: float
    v_th: float
    clipped: float


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`ann_to_snn` did; ``print(report)`` shows the per-layer table.

    Attributes:
        mode, percentile, normalise, v_init: the arguments used.
        layers: one :class:`LayerScale` per ReLU, in order.
        folded: ``"conv <- bn"`` names of the batch norms folded into the layer before them.
        dropped: names of the dropped ``Dropout``/``Identity`` layers.
        notes: other rewrites (a max pool moved after its ReLU, a pool kept plain, ...).
        samples: number of calibration samples seen.
        seconds: wall time of the conversion (calibration included).
    """

    mode: str
    percentile: float
    normalise: str
    v_init: float
    layers: tuple[LayerScale, ...]
    folded: tuple[str, ...]
    dropped: tuple[str, ...]
    notes: tuple[str, ...]
    samples: int
    seconds: float

    @property
    def scales(self) -> tuple[float, ...]:
        """The ``lambda`` of every ReLU, in order."""
        return tuple(s.scale for s in self.layers)

    def __str__(self) -> str:
        how = f"{self.mode}" + (f" ({self.percentile:g} %)" if self.mode == "percentile" else "")
        head = (
            f"ANN->SNN conversion: mode={how}, normalise={self.normalise}, v_init={self.v_init:g}*v_th, "
            f"{self.samples} calibration samples, {self.seconds:.2f} s"
        )
        rows = [("pos", "ann layer", "after", "max", "scale", "v_th", "clipped")]
        for s in self.layers:
            rows.append(
                (
                    str(s.position),
                    s.ann_name,
                    s.after,
                    f"{s.max:.4g}",
                    f"{s.scale:.4g}",
                    f"{s.v_th:.4g}",
                    f"{100 * s.clipped:.3f} %",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head]
        for j, r in enumerate(rows):
            lines.append(
                "  ".join(
                    c.rjust(w) if i >= 3 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        for what, items in (("folded", self.folded), ("dropped", self.dropped), ("notes", self.notes)):
            if items:
                lines.append(f"{what}: " + "; ".join(items))
        return "\n".join(lines)


class ConvertedIF(IF):
    """:class:`~spikekit.IF` whose fresh membrane starts at ``v_init * v_th`` instead of 0.

    Same step function (and so the same kernels) as ``IF``; only the initial state differs.
    With a soft reset and a constant input, the spike count after ``t`` steps is then
    ``round(t * x / v_th)`` instead of ``floor(...)`` when ``v_init = 0.5``.

    Args:
        v_init: initial membrane as a fraction of the threshold.
        **kwargs: the arguments of :class:`~spikekit.IF`.

    Shape:
        as :class:`~spikekit.IF`.

    Example:
        >>> import torch
        >>> ConvertedIF(v_init=0.5, reset="soft")(torch.full((4, 1, 1), 0.5)).flatten()
        tensor([1., 0., 1., 0.])
    """

    def __init__(self, *, v_init: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.v_init = float(v_init)

    def _rest(self, params: Any) -> Tensor:
        return params.v_th * self.v_init

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, v_init={self.v_init:g}"


class SpikingMaxPool2d(StepAware):
    """Max pooling of spike trains by gating: each window passes the spikes of the input that has
    accumulated the most so far (Rueckauer et al. 2017), so its rate tends to the largest rate.

    Works for any non-negative input (spikes, pooled spikes); ties go to the first position of
    the window. Despite the name any ``nn.MaxPool1d/2d/3d`` geometry is accepted.

    Args:
        pool: the ANN's max-pool layer (kernel, stride, padding, dilation, ceil mode are used).

    Shape:
        ``[T, B, C, *spatial]`` -> ``[T, B, C, *pooled]``; inside :func:`spikekit.stepwise` one
        step ``[B, C, *spatial]`` at a time (the accumulated counts are the carried state,
        cleared by :func:`spikekit.reset`).

    Example:
        >>> import torch
        >>> zs = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]).view(4, 1, 1, 1, 2)
        >>> SpikingMaxPool2d(torch.nn.MaxPool2d((1, 2)))(zs).flatten()  # input 2 fires more
        tensor([1., 1., 1., 0.])
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        if not isinstance(pool, _MAXPOOL):
            raise TypeError(f"SpikingMaxPool2d takes an nn.MaxPool1d/2d/3d, got {type(pool).__name__}")
        self.pool = copy.deepcopy(pool)
        self.pool.return_indices = True

    def _gate(self, acc: Tensor, x: Tensor) -> Tensor:
        _, idx = self.pool(acc)
        return x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)

    def forward(self, xs: Tensor) -> Tensor:
        """Gate ``xs`` (``[T, B, C, *spatial]``, or one step inside ``stepwise``)."""
        if self.streaming:
            acc = xs if self._stream.state is None else self._stream.state + xs  # type: ignore[union-attr]
            self._stream.state = acc  # type: ignore[union-attr]
            return self._gate(acc, xs)
        if not isinstance(xs, Tensor) or xs.ndim < 4:
            got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
            raise ValueError(f"SpikingMaxPool2d: expected [T, B, C, *spatial], got {got}")
        lead = xs.shape[:2]
        acc = xs.cumsum(0)  # includes the current step, as in the stepwise form
        return self._gate(acc.flatten(0, 1), xs.flatten(0, 1)).unflatten(0, lead)

    def extra_repr(self) -> str:
        p = self.pool
        return f"kernel_size={p.kernel_size}, stride={p.stride}, padding={p.padding}"


class _Scale(nn.Module):
    """Multiply by a constant (only used when a network ends in a ReLU: spikes -> ANN units)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"{self.scale:g}"


# ---------------------------------------------------------------------------------- preparation


def _leaves(ann: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of a (nested) ``nn.Sequential`` in call order, with their dotted names."""
    if not isinstance(ann, nn.Sequential):
        raise TypeError(
            f"ann_to_snn converts nn.Sequential models (nested Sequentials are flattened), got "
            f"{type(ann).__name__}: its forward order cannot be read from its children. Rebuild it "
            f"as nn.Sequential(...) with the same layers (state_dict keys can be remapped)"
        )
    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, m: nn.Module) -> None:
        for n, c in m.named_children():
            name = f"{prefix}.{n}" if prefix else n
            if isinstance(c, nn.Sequential):
                walk(name, c)
            else:
                out.append((name, c))

    walk("", ann)
    return out


def _short(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}, {m.out_features})"
    if isinstance(m, nn.modules.conv._ConvNd):
        return f"{type(m).__name__}({m.in_channels}, {m.out_channels}, k={tuple(m.kernel_size)})"
    return type(m).__name__


def _prepare(
    ann: nn.Module,
) -> tuple[list[tuple[str, nn.Module]], list[str], list[str], list[str]]:
    """Copy, eval, drop dropout, fold batch norm, check every layer, move max pools after ReLUs.

    Returns:
        ``(layers, folded, dropped, notes)``.
    """
    leaves = _leaves(ann)
    layers: list[tuple[str, nn.Module]] = []
    folded: list[str] = []
    dropped: list[str] = []
    notes: list[str] = []
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    for pos, (name, m) in enumerate(leaves):
        if isinstance(m, _DROPPED):
            dropped.append(name)
            continue
        if isinstance(m, _BN):
            prev = layers[-1][1] if layers else None
            if not isinstance(prev, _AFFINE):
                raise UnsupportedLayerError(
                    name,
                    pos,
                    m,
                    "a batch norm is folded into the Conv/Linear right before it, and "
                    f"this one follows {type(prev).__name__ if prev is not None else 'the input'}",
                )
            if not m.track_running_stats or m.running_mean is None:
                raise UnsupportedLayerError(
                    name, pos, m, "a batch norm without running statistics cannot be folded"
                )
            m = copy.deepcopy(m).eval()
            prev = copy.deepcopy(prev).eval()
            fuse = fuse_linear_bn_eval if isinstance(prev, nn.Linear) else fuse_conv_bn_eval
            layers[-1] = (layers[-1][0], fuse(prev, m))
            folded.append(f"{layers[-1][0]} <- {name}")
            continue
        if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
            raise UnsupportedLayerError(
                name, pos, m, "only nn.Flatten(start_dim=1, end_dim=-1) (all features) is supported"
            )
        if isinstance(m, (nn.ReLU, *_AFFINE, *_PARAM_FREE, *_MAXPOOL)):
            layers.append((name, copy.deepcopy(m).eval()))
            continue
        why = (
            "only ReLU activations can be rate-coded by an IF neuron"
            if _looks_like_activation(m)
            else "it has no spiking equivalent here"
        )
        raise UnsupportedLayerError(name, pos, m, f"{why}; supported: {_SUPPORTED}")
    # relu(maxpool(x)) == maxpool(relu(x)): swap so the pool sees rates (spikes), where gating works
    i = 0
    while i < len(layers) - 1:
        if isinstance(layers[i][1], _MAXPOOL) and isinstance(layers[i + 1][1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            notes.append(f"{layers[i + 1][0]} moved after {layers[i][0]} (max commutes with ReLU)")
            i = max(i - 1, 0)
        else:
            i += 1
    return layers, folded, dropped, notes


def _looks_like_activation(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.nn.modules.activation")


def fold_batchnorm(ann: nn.Module) -> nn.Sequential:
    """A copy of ``ann`` in eval mode with every batch norm folded into the Conv/Linear before it.

    Dropout and Identity layers are dropped and nested ``nn.Sequential`` flattened; the result
    computes the same function as ``ann.eval()`` (up to rounding).

    Args:
        ann: an ``nn.Sequential`` (possibly nested) of supported layers.

    Returns:
        A flat ``nn.Sequential`` (the ANN is not modified).

    Shape:
        as ``ann``: ``[B, *features]``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> ann = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.allclose(fold_batchnorm(ann)(x), ann(x), atol=1e-6)
        True
    """
    layers, *_ = _prepare(ann)
    return nn.Sequential(*(m for _, m in layers))


# ---------------------------------------------------------------------------------- calibration


def _batches(data: Tensor | Iterable[Any], batch_size: int) -> Iterator[Tensor]:
    if isinstance(data, Tensor):
        yield from data.split(batch_size)
        return
    for item in data:
        if isinstance(item, (tuple, list)):
            item = item[0]  # (inputs, targets) from a DataLoader
        if not isinstance(item, Tensor):
            raise TypeError(
                f"calibration data must be a tensor [N, *features] or an iterable of tensors or "
                f"(inputs, targets) batches; got a batch of type {type(item).__name__}"
            )
        yield item


class _Stats:
    """Max and a bounded uniform subsample of the positive activations of one ReLU."""

    CAP = 1 << 22  # values kept per layer (16 MB in float32); torch.quantile accepts up to 2**24

    def __init__(self, keep_samples: bool, generator: torch.Generator) -> None:
        self.max = 0.0
        self.keep = keep_samples
        self.gen = generator
        self.rate = 1.0
        self.values: list[Tensor] = []
        self.count = 0

    def add(self, a: Tensor) -> None:
        self.max = max(self.max, float(a.max()))
        if not self.keep:
            return
        pos = a[a > 0].detach().float().cpu()
        if self.rate < 1.0:
            pos = pos[torch.rand(pos.numel(), generator=self.gen) < self.rate]
        self.values.append(pos)
        self.count += pos.numel()
        while self.count > self.CAP:  # thin everything kept so far by half, and later batches too
            v = torch.cat(self.values)
            v = v[torch.rand(v.numel(), generator=self.gen) < 0.5]
            self.values, self.count, self.rate = [v], v.numel(), self.rate / 2

    def quantile(self, q: float) -> tuple[float, float]:
        """``(value, fraction of positives above it)``."""
        v = torch.cat(self.values) if self.values else torch.zeros(0)
        if v.numel() == 0:
            return 0.0, 0.0
        val = float(torch.quantile(v, q / 100.0))
        return val, float((v > val).float().mean())


# ---------------------------------------------------------------------------------- conversion


def ann_to_snn(
    ann: nn.Module,
    calibration_data: Tensor | Iterable[Any],
    *,
    mode: Literal["max", "percentile"] = "max",
    percentile: float = 99.9,
    normalise: Literal["weights", "threshold"] = "weights",
    v_init: float = 0.5,
    max_batches: int | None = None,
    batch_size: int = 256,
) -> tuple[nn.Sequential, ConversionReport]:
    """Convert a trained ReLU network into a rate-coded network of soft-reset IF neurons.

    See the module docstring for the method. The ANN is not modified.

    Args:
        ann: an ``nn.Sequential`` (nested ones are flattened) of ``Linear``, ``Conv1d/2d/3d``,
            ``BatchNorm`` (right after a conv/linear: folded), ``ReLU``, ``AvgPool``,
            ``AdaptiveAvgPool``, ``MaxPool`` (after a ReLU, or before the first one),
            ``Flatten`` and ``Dropout``/``Identity`` (dropped). Anything else raises
            :class:`UnsupportedLayerError` naming the layer and its position.
        calibration_data: the ANN's inputs ``[N, *features]`` (a tensor, split into
            ``batch_size`` chunks) or an iterable of tensors or ``(inputs, targets)`` batches (a
            ``DataLoader``). Training data is the usual choice.
        mode: ``"max"`` (largest activation per layer) or ``"percentile"`` (the ``percentile``-th
            percentile of the *positive* activations, as in Rueckauer et al. 2017 / snntoolbox;
            spikingjelly's ``"99.9%"`` counts the zeros too, which for sparse layers is a lower
            percentile of the positive ones).
        percentile: in ``(0, 100]``, used with ``mode="percentile"``.
        normalise: ``"weights"`` (thresholds 1, weights and biases rescaled) or ``"threshold"``
            (thresholds = scales, weights multiplied by the previous layer's scale, biases kept).
        v_init: initial membrane as a fraction of the threshold (0.5: round instead of floor;
            0 gives plain :class:`~spikekit.IF` neurons).
        max_batches: use at most this many calibration batches.
        batch_size: chunk size when ``calibration_data`` is a tensor.

    Returns:
        ``(snn, report)``: an ``nn.Sequential`` of spikekit layers (``TimeDistributed``
        conv/linear/pool, IF neurons, :class:`SpikingMaxPool2d`, ``Flatten``), on the ANN's
        device and dtype, and a :class:`ConversionReport` (``print(report)`` for the table).

    Shape:
        ``snn``: input ``[T, B, *features]`` (the analog input repeated at every step:
        :func:`spikekit.encoding.direct`) -> per-step output ``[T, B, *out]`` in ANN units;
        :func:`decode` averages it over time into ``[B, *out]``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from spikekit.encoding import direct
        >>> _ = torch.manual_seed(0)
        >>> ann = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> x = torch.rand(64, 4)
        >>> snn, report = ann_to_snn(ann, x, mode="max")
        >>> len(report.layers), report.layers[0].v_th
        (1, 1.0)
        >>> y = decode(snn(direct(x, 64)))
        >>> bool((y - ann(x)).abs().max() < 0.05)
        True
    """
    t0 = time.perf_counter()
    if mode not in ("max", "percentile"):
        raise ValueError(f"mode must be 'max' or 'percentile', got {mode!r}")
    if normalise not in ("weights", "threshold"):
        raise ValueError(f"normalise must be 'weights' or 'threshold', got {normalise!r}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not 0.0 <= v_init < 1.0:
        raise ValueError(f"v_init must be in [0, 1) (a fraction of the threshold), got {v_init}")
    layers, folded, dropped, notes = _prepare(ann)
    relus = [i for i, (_, m) in enumerate(layers) if isinstance(m, nn.ReLU)]

    # Where is each max pool? Before the first ReLU the input is the same analog value at every
    # step, so anything there runs exactly as in the ANN; after it, a max pool must see spikes
    # (only parameter-free layers since the last ReLU), where the gate applies.
    first_relu = relus[0] if relus else len(layers)
    for i, (name, m) in enumerate(layers):
        if isinstance(m, _MAXPOOL) and i > first_relu:
            j = i - 1
            while not isinstance(layers[j][1], nn.ReLU):
                if isinstance(layers[j][1], _AFFINE):
                    pos = next(p for p, (n, _) in enumerate(_leaves(ann)) if n == name)
                    raise UnsupportedLayerError(
                        name,
                        pos,
                        m,
                        f"a max pool after {layers[j][0]!r} ({_short(layers[j][1])}) "
                        "pools input currents, whose per-step max is not the max of their rates; "
                        "put the max pool right after a ReLU (or use AvgPool)",
                    )
                j -= 1

    # ---- calibration
    ref = next(iter(ann.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    gen = torch.Generator().manual_seed(0)
    stats = {i: _Stats(mode == "percentile", gen) for i in relus}
    samples = 0
    with torch.no_grad():
        for b, x in enumerate(_batches(calibration_data, batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            x = x.to(device=device, dtype=dtype)
            samples += x.shape[0]
            for i, (_, m) in enumerate(layers):
                x = m(x)
                if i in stats:
                    stats[i].add(x)
    if samples == 0:
        raise ValueError("calibration_data gave no samples")

    scales: dict[int, tuple[float, float, float]] = {}  # relu index -> (max, scale, clipped)
    for i in relus:
        st = stats[i]
        scale, clipped = (st.max, 0.0) if mode == "max" else st.quantile(percentile)
        if not scale > 0.0 or not math.isfinite(scale):
            notes.append(f"{layers[i][0]} was never positive on the calibration data; scale set to 1")
            scale, clipped = 1.0, 0.0
        scales[i] = (st.max, scale, clipped)

    # ---- build: walk the segments between ReLUs, tracking lambda_in (ANN units per unit of the
    # signal entering the segment: 1 for the analog input, the previous scale after an IF)
    out: list[nn.Module] = []
    infos: list[LayerScale] = []
    lam_in = 1.0
    start = 0
    for end in [*relus, len(layers)]:
        seg = layers[start:end]
        lam = scales[end][1] if end < len(layers) else 1.0  # readout: ANN units
        first_param = True
        for name, m in seg:
            if isinstance(m, _AFFINE):
                m = copy.deepcopy(m)
                with torch.no_grad():
                    if normalise == "weights":
                        if first_param:
                            m.weight.mul_(lam_in / lam)
                        if m.bias is not None:
                            m.bias.div_(lam)
                    elif first_param:
                        m.weight.mul_(lam_in)
                first_param = False
                out.append(TimeDistributed(m))
            elif isinstance(m, nn.Flatten):
                out.append(Flatten())
            elif isinstance(m, _MAXPOOL) and start > 0:
                out.append(SpikingMaxPool2d(m))
            else:  # avg pools, and max pools on the constant analog input
                out.append(TimeDistributed(m))
                if isinstance(m, _MAXPOOL):
                    notes.append(f"{name} sees the analog input (before the first ReLU): plain max pool")
        # With no weights in the segment nothing rescaled its input: the threshold carries it.
        no_weights = first_param
        if end < len(layers):
            if no_weights:
                v_th = lam / lam_in
            else:
                v_th = 1.0 if normalise == "weights" else lam
            neuron: nn.Module = (
                ConvertedIF(v_th=v_th, reset="soft", v_init=v_init) if v_init else IF(v_th=v_th, reset="soft")
            )
            mx, scale, clipped = scales[end]
            prev = next((m for _, m in reversed(seg) if not isinstance(m, nn.Flatten)), None)
            infos.append(
                LayerScale(
                    position=len(out),
                    ann_name=layers[end][0],
                    after=_short(prev) if prev is not None else "input",
                    max=mx,
                    scale=scale,
                    v_th=v_th,
                    clipped=clipped,
                )
            )
            out.append(neuron)
            lam_in = scale
            start = end + 1
        elif no_weights and lam_in != 1.0:
            out.append(_Scale(lam_in))  # the network ends in spikes: give them their ANN units
    snn = nn.Sequential(*out).to(device=device, dtype=dtype)
    report = ConversionReport(
        mode=mode,
        percentile=float(percentile),
        normalise=normalise,
        v_init=float(v_init),
        layers=tuple(infos),
        folded=tuple(folded),
        dropped=tuple(dropped),
        notes=tuple(notes),
        samples=samples,
        seconds=time.perf_counter() - t0,
    )
    return snn, report


def decode(ys: Tensor, *, cumulative: bool = False, batch_first: bool = False) -> Tensor:
    """Rate decoding of a converted network's readout: the mean over time.

    Args:
        ys: per-step outputs ``[T, B, *out]`` (``[B, T, *out]`` with ``batch_first``).
        cumulative: return the running mean after every step instead (``[T, B, *out]``): row
            ``t - 1`` is what a run of ``t`` steps decodes to, since the network is causal.
        batch_first: layout of ``ys`` (and of the cumulative result).

    Returns:
        ``[B, *out]``, or ``[T, B, *out]`` when ``cumulative``.

    Shape:
        ``[T, B, *out]`` -> ``[B, *out]`` (or ``[T, B, *out]``).

    Example:
        >>> import torch
        >>> decode(torch.tensor([[1.0], [0.0], [2.0]]))
        tensor([1.])
        >>> decode(torch.tensor([[1.0], [0.0], [2.0]]), cumulative=True).flatten()
        tensor([1.0000, 0.5000, 1.0000])
    """
    if not isinstance(ys, Tensor) or ys.ndim < 2:
        got = tuple(ys.shape) if isinstance(ys, Tensor) else type(ys).__name__
        raise ValueError(f"decode: expected [T, B, *out], got {got}")
    dim = 1 if batch_first else 0
    if not cumulative:
        return ys.mean(dim)
    steps = torch.arange(1, ys.shape[dim] + 1, device=ys.device, dtype=ys.dtype)
    steps = steps.view(-1, *([1] * (ys.ndim - 1))) if dim == 0 else steps.view(1, -1, *([1] * (ys.ndim - 2)))
    return ys.cumsum(dim) / steps
