"""Encoders: turn static data ``[B, *features]`` (or sequences) into spike trains ``[T, B, *features]``.

Every encoder returns time-first tensors; ``batch_first=True`` returns ``[B, T, *features]``
instead. Random encoders take an explicit ``torch.Generator`` (``None`` uses torch's global
generator), so a seeded generator reproduces a spike train exactly. Module forms hold ``T``
and the options only: they carry no state between calls.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn

from spikekit import kernels
from spikekit import surrogate as _sg
from spikekit.functional.sequence import time_first
from spikekit.neurons._base import Options, decay_from
from spikekit.neurons.if_ import IFParams, IFState, if_step
from spikekit.neurons.lif import LIFParams, LIFState, lif_step

__all__ = [
    "ConstantCurrentLIF",
    "Delta",
    "Direct",
    "Latency",
    "Poisson",
    "Population",
    "SpikeLatencyLIF",
    "constant_current_lif",
    "delta",
    "direct",
    "first_spikes",
    "gaussian_fields",
    "latency",
    "latency_times",
    "poisson",
    "population",
    "spike_latency_lif",
    "target_counts",
    "target_one_hot",
    "target_times",
]


# ----------------------------------------------------------------------------- checks


def _check_T(T: int, who: str) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"{who}: T must be a positive int (number of time steps), got {T!r}")
    return T


def _check_data(x: Tensor, who: str, what: str = "x", layout: str = "[B, *features]") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {what} must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{who}: {what} must have shape {layout} (at least a batch dim), got a 0-d tensor")
    if not x.is_floating_point():
        x = x.float()
    return x


def _check_unit(x: Tensor, who: str, what: str = "x") -> None:
    """Probabilities must lie in [0, 1]; report the offending range."""
    if not x.numel():
        return
    # One reduction and one read back (on a GPU, one wait per call rather than three); a NaN
    # makes both ends NaN, which fails the comparison.
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
    if not (lo >= 0 and hi <= 1):
        nan = " (contains NaN)" if bool(torch.isnan(x).any()) else ""
        lo, hi = float(x.nan_to_num(0.0).min()), float(x.nan_to_num(0.0).max())
        raise ValueError(f"{who}: {what} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{nan}")


def _out(zs: Tensor, batch_first: bool) -> Tensor:
    return zs.transpose(0, 1) if batch_first else zs


# ----------------------------------------------------------------------------- direct


def direct(x: Tensor, T: int, *, batch_first: bool = False) -> Tensor:
    """Direct (repeat) encoding: present the same analogue input at every step.

    Math:
        ``out[t] = x`` for ``t = 0 .. T-1``. The gradient flows to ``x`` (summed over time).

    Args:
        x: data ``[B, *features]``.
        T: number of time steps (> 0).
        batch_first: return ``[B, T, *features]`` (snetx ``DirectEncoder(T)``'s layout).

    Returns:
        ``[T, B, *features]`` (a copy, safe to modify in place).

    Example:
        >>> import torch
        >>> direct(torch.tensor([[0.5, 2.0]]), 3).squeeze(1)
        tensor([[0.5000, 2.0000],
                [0.5000, 2.0000],
                [0.5000, 2.0000]])
    """
    _check_T(T, "direct")
    x = _check_data(x, "direct")
    return _out(x.unsqueeze(0).repeat(T, *([1] * x.ndim)), batch_first)


# ----------------------------------------------------------------------------- poisson / rate


def poisson(
    x: Tensor,
    T: int,
    generator: torch.Generator | None = None,
    *,
    f_max: float | None = None,
    dt: float = 1e-3,
    batch_first: bool = False,
) -> Tensor:
    """Poisson (Bernoulli rate) encoding: spike at each step with a probability set by ``x``.

    Math:
        ``out[t] = 1[u_t < p]`` with ``u_t ~ U[0, 1)`` drawn independently per step and element,
        ``p = x`` (snntorch ``spikegen.rate``, spikingjelly ``PoissonEncoder``) or, when
        ``f_max`` is given, ``p = x * f_max * dt`` (norse ``poisson_encode``: a maximal rate in
        Hz and a step in seconds). ``E[mean_t out] = clamp(p, 0, 1)``.

    The two forms differ in what they accept and in how they draw, each as its peer does:

    * ``p = x``: ``x`` must lie in [0, 1] (a probability; anything else raises). The uniforms
      are one ``torch.rand(T, *x.shape)`` in ``x``'s dtype.
    * ``f_max``: any real ``x`` (norse feeds normalised images with negative values); ``p <= 0``
      never spikes and ``p >= 1`` always does. The uniforms are drawn exactly as norse's
      ``poisson_encode`` draws them -- one ``torch.rand(T, *x.shape)`` in torch's default
      dtype, cast to float32 -- so a generator seeded alike gives norse's spikes for float32
      *and* float64 input (a float64 draw would consume the stream differently).

    Args:
        x: intensities ``[B, *features]``: in [0, 1] without ``f_max``, any real with it.
        T: number of time steps (> 0).
        generator: random generator (``None``: torch's global one).
        f_max: maximal firing rate (norse form); ``None`` uses ``p = x``.
        dt: step length in seconds, used only with ``f_max``.
        batch_first: return ``[B, T, *features]``.

    Returns:
        Spikes ``[T, B, *features]`` of 0/1 in ``x``'s dtype (no gradient).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> zs = poisson(torch.tensor([[0.0, 1.0]]), 4, generator=g)
        >>> zs.squeeze(1).T
        tensor([[0., 0., 0., 0.],
                [1., 1., 1., 1.]])
        >>> poisson(torch.tensor([[-0.4, 2.5]]), 3, f_max=1000.0).squeeze(1).T  # norse form
        tensor([[0., 0., 0.],
                [1., 1., 1.]])
    """
    _check_T(T, "poisson")
    x = _check_data(x, "poisson")
    if f_max is None:
        _check_unit(x, "poisson")
        u = torch.rand((T, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        return _out((u < x.detach()).to(x.dtype), batch_first)
    if not (math.isfinite(f_max) and f_max >= 0 and math.isfinite(dt) and dt > 0):
        raise ValueError(f"poisson: f_max must be >= 0 and dt > 0, got f_max={f_max!r}, dt={dt!r}")
    if f_max * dt > 1:
        # A configuration check, not an input check: f_max * dt is the rate of x = 1, and above 1
        # it says the step is too long for the rate (any real x itself is fine, as in norse).
        raise ValueError(
            f"poisson: f_max * dt is the spike probability of x = 1 and must be <= 1, "
            f"got f_max * dt = {f_max * dt:.4g} (f_max={f_max}, dt={dt})"
        )
    # norse: ``torch.rand(T, *shape).float() < dt * f_max * x`` -- same dtype, same product order.
    u = torch.rand((T, *x.shape), generator=generator, device=x.device).float()
    return _out((u < dt * f_max * x.detach()).to(x.dtype), batch_first)


# ----------------------------------------------------------------------------- LIF-driven encoders


def _lif_params(
    x: Tensor, tau: float | None, beta: float | None, dt: float, v_th: float, v_reset: float, v_leak: float
) -> LIFParams:
    b = decay_from(tau, beta, dt, 10.0, "")
    return LIFParams(
        *(torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (b, v_th, v_reset, v_leak))
    )


def constant_current_lif(
    x: Tensor,
    T: int,
    *,
    tau: float | None = None,
    beta: float | None = None,
    dt: float = 1.0,
    v_th: float = 1.0,
    v_reset: float = 0.0,
    v_leak: float = 0.0,
    surrogate: str | _sg.Surrogate = "atan",
    batch_first: bool = False,
) -> Tensor:
    """Drive a LIF neuron with the constant current ``x`` and return its spikes (norse
    ``ConstantCurrentLIFEncoder``).

    The neuron is spikekit's own :func:`~spikekit.neurons.lif_step` (hard reset,
    ``decay_input=True``) run by :func:`spikekit.kernels.scan`, so this encoder and ``spk.LIF``
    share one update rule. Larger currents spike earlier and more often; the output is
    differentiable in ``x`` through the surrogate.

    Math:
        ``v_t = beta v_{t-1} + (1 - beta)(v_leak + x)``, ``z_t = H(v_t - v_th)``, hard reset to
        ``v_reset``; ``beta = 1 - dt / tau``. The defaults ``tau=10, dt=1`` give ``beta = 0.9``,
        norse's default (``tau_mem_inv = 100``, ``dt = 1e-3``).

    Args:
        x: input currents ``[B, *features]``.
        T: number of time steps.
        tau, beta, dt: membrane time constant (default 10) with step ``dt``, or ``beta`` directly.
        v_th, v_reset, v_leak: threshold, reset and resting potentials.
        surrogate: surrogate gradient of the spike.
        batch_first: return ``[B, T, *features]``.

    Returns:
        Spikes ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> constant_current_lif(torch.tensor([[2.0, 4.0, 8.0, 16.0]]), 2).squeeze(1)
        tensor([[0., 0., 0., 1.],
                [0., 0., 1., 1.]])
    """
    _check_T(T, "constant_current_lif")
    x = _check_data(x, "constant_current_lif")
    p = _lif_params(x, tau, beta, dt, v_th, v_reset, v_leak)
    options = Options(surrogate=_sg.get(surrogate), reset="hard")
    zs, _ = kernels.scan(lif_step, direct(x, T), LIFState(torch.zeros_like(x) + p.v_leak), p, options)
    return _out(zs, batch_first)


def first_spikes(zs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Keep only each neuron's first spike (norse ``SpikeLatencyEncoder``).

    Math:
        ``out_t = z_t`` if ``z_t != 0`` and no earlier ``z_s != 0``, else 0. The kept entries
        pass their gradient through.

    Args:
        zs: spikes ``[T, B, *features]``.
        batch_first: ``zs`` and the result are ``[B, T, *features]``.

    Returns:
        Spikes of the shape of ``zs`` with at most one non-zero per neuron.

    Example:
        >>> import torch
        >>> first_spikes(torch.tensor([[0.0], [1.0], [1.0]]).unsqueeze(1)).flatten()
        tensor([0., 1., 0.])
    """
    zs = time_first(zs, "first_spikes", batch_first)
    fired = (zs.detach() != 0).to(zs.dtype)
    first = (torch.cumsum(fired, 0) == 1) & (fired != 0)
    return _out(zs * first.to(zs.dtype), batch_first)


def spike_latency_lif(
    x: Tensor,
    T: int,
    *,
    tau: float | None = None,
    beta: float | None = None,
    dt: float = 1.0,
    v_th: float = 1.0,
    v_reset: float = 0.0,
    v_leak: float = 0.0,
    surrogate: str | _sg.Surrogate = "atan",
    batch_first: bool = False,
) -> Tensor:
    """Time-to-first-spike of a LIF driven by the constant current ``x`` (norse ``SpikeLatencyLIFEncoder``).

    Same neuron as :func:`constant_current_lif` (arguments identical), followed by
    :func:`first_spikes`: each input spikes at most once, earlier for a larger current (the
    neuron behaves as if it had an infinite refractory period).

    Returns:
        Spikes ``[T, B, *features]``, at most one per neuron.

    Example:
        >>> import torch
        >>> spike_latency_lif(torch.tensor([[2.0, 4.0, 8.0, 16.0]]), 3).squeeze(1)
        tensor([[0., 0., 0., 1.],
                [0., 0., 1., 0.],
                [0., 1., 0., 0.]])
    """
    zs = constant_current_lif(
        x, T, tau=tau, beta=beta, dt=dt, v_th=v_th, v_reset=v_reset, v_leak=v_leak, surrogate=surrogate
    )
    return _out(first_spikes(zs), batch_first)


# ----------------------------------------------------------------------------- latency


def latency_times(
    x: Tensor,
    T: int,
    *,
    tau: float = 1.0,
    threshold: float = 0.01,
    first_spike_time: int = 0,
    linear: bool = False,
    normalize: bool = False,
    epsilon: float = 1e-7,
) -> Tensor:
    """Spike times of the latency code (snntorch ``spikegen.latency_code``), before rounding.

    Math:
        log (default), the firing time of an RC circuit charged by ``x`` towards threshold:
        ``t = tau ln(x' / (x' - threshold)) + t0`` with ``x' = max(x, threshold + epsilon)``;
        ``normalize`` rescales so the latest time in the tensor is ``T - 1``:
        ``t = (t - t0)(T - 1 - t0) / max(t - t0) + t0`` (the maximum is over the whole tensor,
        as in snntorch).
        linear: ``t = tau min(1 - x, 1 - threshold) + t0``; ``normalize`` sets
        ``tau = T - 1 - t0``, so ``x = 0`` (or below threshold) fires last, at ``T - 1``.

    Args:
        x: intensities ``[B, *features]`` in [0, 1].
        T: number of time steps.
        tau: time constant of the code (> 0).
        threshold: inputs below it saturate (fire last); in (0, 1) for log, [0, 1) for linear.
        first_spike_time: ``t0``, earliest spike time (``0 <= t0 <= T - 1``).
        linear: linear instead of logarithmic code.
        normalize: stretch the code over the ``T`` steps.
        epsilon: keeps the log finite at the threshold.

    Returns:
        Float spike times ``[B, *features]``.
    """
    who = "latency"
    _check_T(T, who)
    x = _check_data(x, who)
    _check_unit(x, who)
    if not (tau > 0):
        raise ValueError(f"{who}: tau must be > 0, got {tau!r}")
    lo_ok = threshold >= 0 if linear else threshold > 0
    if not (lo_ok and threshold < 1):
        rng = "[0, 1)" if linear else "(0, 1)"
        raise ValueError(
            f"{who}: threshold must lie in {rng} for the {'linear' if linear else 'log'} code, got {threshold!r}"
        )
    if (
        isinstance(first_spike_time, bool)
        or not isinstance(first_spike_time, int)
        or not 0 <= first_spike_time <= T - 1
    ):
        raise ValueError(
            f"{who}: first_spike_time must be an int in [0, T - 1] = [0, {T - 1}], got {first_spike_time!r}"
        )
    t0 = first_spike_time
    if linear:
        if normalize:
            tau = T - 1 - t0
        return torch.clamp_max(tau * (1 - x), tau * (1 - threshold)) + t0
    xc = torch.clamp_min(x, threshold + epsilon)
    t = tau * torch.log(xc / (xc - threshold))
    if normalize:
        t = t * ((T - 1 - t0) / t.max())
    return t + t0


def latency(
    x: Tensor,
    T: int,
    *,
    tau: float = 1.0,
    threshold: float = 0.01,
    first_spike_time: int = 0,
    linear: bool = False,
    normalize: bool = False,
    clip: bool = False,
    epsilon: float = 1e-7,
    batch_first: bool = False,
) -> Tensor:
    """Latency (time-to-first-spike) encoding: one spike per input, earlier for larger ``x``
    (snntorch ``spikegen.latency``; with ``linear=True, normalize=True, threshold=0`` it is
    spikingjelly's ``LatencyEncoder(T, "linear")``).

    Math:
        Each input fires once, at step ``round(t)`` with ``t`` from :func:`latency_times`
        (round half to even, as ``torch.round``). With ``clip`` inputs below ``threshold`` do not
        fire at all (otherwise they fire at the latest time).

    Args:
        x: intensities ``[B, *features]`` in [0, 1].
        T: number of time steps.
        tau, threshold, first_spike_time, linear, normalize, epsilon: see :func:`latency_times`.
        clip: silence inputs below ``threshold``.
        batch_first: return ``[B, T, *features]``.

    Returns:
        Spikes ``[T, B, *features]``, one per input (none if clipped).

    Raises:
        ValueError: a spike time falls beyond ``T - 1`` (use ``normalize=True``, a smaller
            ``tau`` or a larger ``T``).

    Example:
        >>> import torch
        >>> latency(torch.tensor([[0.02, 0.5, 1.0]]), 5, linear=True, normalize=True).squeeze(1)
        tensor([[0., 0., 1.],
                [0., 0., 0.],
                [0., 1., 0.],
                [0., 0., 0.],
                [1., 0., 0.]])
    """
    x = _check_data(x, "latency")
    t = latency_times(
        x,
        T,
        tau=tau,
        threshold=threshold,
        first_spike_time=first_spike_time,
        linear=linear,
        normalize=normalize,
        epsilon=epsilon,
    )
    idx = torch.round(t)
    if idx.numel() and float(idx.max()) > T - 1:
        raise ValueError(
            f"latency: the latest spike time is {int(idx.max())} but only T = {T} steps (0..{T - 1}) "
            f"are available; pass normalize=True, a smaller tau, or a larger T"
        )
    zs = torch.zeros((T, *x.shape), dtype=x.dtype, device=x.device)
    zs.scatter_(0, idx.long().unsqueeze(0), 1.0)
    if clip:
        zs = zs * (x >= threshold).to(x.dtype)
    return _out(zs, batch_first)


# ----------------------------------------------------------------------------- delta


def delta(
    xs: Tensor,
    threshold: float = 0.1,
    *,
    padding: bool = False,
    off_spike: bool = False,
    batch_first: bool = False,
) -> Tensor:
    """Delta (threshold-crossing) encoding of a sequence (snntorch ``spikegen.delta``).

    Math:
        ``d_t = x_t - x_{t-1}`` with ``x_{-1} = 0`` (or ``x_0`` when ``padding``);
        ``out_t = 1[d_t >= threshold] - 1[d_t <= -threshold]`` (the negative "off" spikes only
        with ``off_spike``).

    Args:
        xs: sequence ``[T, B, *features]``.
        threshold: change needed for a spike (> 0).
        padding: compare the first step with itself (no spike at ``t = 0``) instead of with 0.
        off_spike: emit -1 for decreases of at least ``threshold``.
        batch_first: ``xs`` and the result are ``[B, T, *features]``.

    Returns:
        Spikes (0/1, or -1/0/1 with ``off_spike``) shaped like ``xs``.

    Example:
        >>> import torch
        >>> b = torch.tensor([1, 2, 0, 2, 2.9]).view(5, 1)
        >>> delta(b, 1.0, off_spike=True).flatten()
        tensor([ 1.,  1., -1.,  1.,  0.])
    """
    xs = time_first(xs, "delta", batch_first)
    if not (threshold > 0):
        raise ValueError(f"delta: threshold must be > 0, got {threshold!r}")
    prev = torch.cat((xs[:1] if padding else torch.zeros_like(xs[:1]), xs[:-1]))
    d = xs - prev
    zs = (d >= threshold).to(xs.dtype)
    if off_spike:
        zs = zs - (d <= -threshold).to(xs.dtype)
    return _out(zs, batch_first)


# ----------------------------------------------------------------------------- population


def gaussian_fields(
    x: Tensor, n: int, *, lo: float = 0.0, hi: float = 1.0, sigma: float | None = None
) -> Tensor:
    """Activity of ``n`` Gaussian receptive fields per input value (population code).

    Math:
        centres ``mu_j = lo + j (hi - lo) / (n - 1)``; ``a_j = exp(-(x - mu_j)^2 / (2 sigma^2))``.
        ``sigma`` defaults to the centre spacing ``(hi - lo) / (n - 1)``. The field whose centre
        is nearest ``x`` is the most active, with ``a = 1`` exactly at its centre.

    Args:
        x: values ``[B, *features]``.
        n: fields per value (>= 1).
        lo, hi: range covered by the centres.
        sigma: width of every field (> 0).

    Returns:
        Activity in (0, 1], ``[B, *features, n]`` (differentiable in ``x``).

    Example:
        >>> import torch
        >>> gaussian_fields(torch.tensor([[0.0, 1.0]]), 3).argmax(-1)
        tensor([[0, 2]])
    """
    x = _check_data(x, "gaussian_fields")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"gaussian_fields: n (fields per value) must be an int >= 1, got {n!r}")
    if not hi > lo:
        raise ValueError(f"gaussian_fields: need hi > lo, got lo={lo!r}, hi={hi!r}")
    if sigma is None:
        sigma = (hi - lo) / (n - 1) if n > 1 else hi - lo
    if not (sigma > 0):
        raise ValueError(f"gaussian_fields: sigma must be > 0, got {sigma!r}")
    mu = (
        torch.linspace(lo, hi, n, dtype=x.dtype, device=x.device)
        if n > 1
        else x.new_full((1,), (lo + hi) / 2)
    )
    return torch.exp(-0.5 * ((x.unsqueeze(-1) - mu) / sigma).square())


def population(
    x: Tensor,
    T: int,
    n: int,
    generator: torch.Generator | None = None,
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    sigma: float | None = None,
    mode: str = "poisson",
    v_th: float = 0.999,
    batch_first: bool = False,
) -> Tensor:
    """Population coding: Gaussian receptive fields (:func:`gaussian_fields`) turned into spikes.

    Math:
        ``a = gaussian_fields(x)``; ``mode="poisson"``: ``out_t ~ Bernoulli(a)`` (see
        :func:`poisson`); ``mode="deterministic"``: an IF neuron with soft reset and threshold
        ``v_th`` integrates ``a`` every step (spikingjelly ``PopSpikeEncoderDeterministic``), so a
        field fires at a regular rate ``~ a``, every step at its centre.

    Args:
        x: values ``[B, *features]``.
        T: number of time steps.
        n: fields per value.
        generator: random generator for ``mode="poisson"``.
        lo, hi, sigma: see :func:`gaussian_fields`.
        mode: ``"poisson"`` or ``"deterministic"``.
        v_th: threshold of the deterministic IF neuron.
        batch_first: return ``[B, T, *features, n]``.

    Returns:
        Spikes ``[T, B, *features, n]`` (flatten the last two dims for spikingjelly's layout).

    Example:
        >>> import torch
        >>> population(torch.tensor([[0.5]]), 4, 3, mode="deterministic").sum(0)
        tensor([[[2., 4., 2.]]])
    """
    _check_T(T, "population")
    a = gaussian_fields(x, n, lo=lo, hi=hi, sigma=sigma)
    if mode == "poisson":
        return poisson(a, T, generator, batch_first=batch_first)
    if mode != "deterministic":
        raise ValueError(f"population: mode must be 'poisson' or 'deterministic', got {mode!r}")
    p = IFParams(a.new_tensor(v_th), a.new_tensor(0.0))
    options = Options(surrogate=_sg.get("straight_through"), reset="soft", detach_reset=True)
    zs, _ = kernels.scan(if_step, direct(a, T), IFState(torch.zeros_like(a)), p, options)
    return _out(zs, batch_first)


# ----------------------------------------------------------------------------- targets


def target_one_hot(y: Tensor, num_classes: int, *, on: float = 1.0, off: float = 0.0) -> Tensor:
    """Labels to a one-hot target with chosen on/off values (snntorch ``targets_convert``).

    Args:
        y: integer labels ``[B]`` (any shape) in ``[0, num_classes)``.
        num_classes: number of classes ``C``.
        on, off: values for the correct and the other classes.

    Returns:
        Float ``[*y.shape, C]``.

    Example:
        >>> import torch
        >>> target_one_hot(torch.tensor([2, 0]), 3, on=5.0, off=-1.0)
        tensor([[-1., -1.,  5.],
                [ 5., -1., -1.]])
    """
    y = check_labels(y, num_classes, "target_one_hot")
    oh = torch.nn.functional.one_hot(y, num_classes).to(torch.get_default_dtype())
    return oh * (on - off) + off


def target_counts(
    y: Tensor, num_classes: int, T: int, *, correct_rate: float = 1.0, incorrect_rate: float = 0.0
) -> Tensor:
    """Desired spike counts over ``T`` steps for a spike-count loss (snntorch ``mse_count_loss``).

    Math:
        ``count = int(T * correct_rate)`` for the label's class and ``int(T * incorrect_rate)``
        for the others (truncated to whole spikes, as snntorch does).

    Returns:
        Float ``[B, C]``.

    Example:
        >>> import torch
        >>> target_counts(torch.tensor([1]), 3, 10, correct_rate=0.8, incorrect_rate=0.25)
        tensor([[2., 8., 2.]])
    """
    _check_T(T, "target_counts")
    for name, r in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
        if not 0 <= r <= 1:
            raise ValueError(f"target_counts: {name} must lie in [0, 1], got {r!r}")
    return target_one_hot(y, num_classes, on=int(T * correct_rate), off=int(T * incorrect_rate))


def target_times(y: Tensor, num_classes: int, T: int, *, on_time: int = 0, off_time: int = -1) -> Tensor:
    """Desired first-spike times for a spike-timing loss (snntorch ``mse_temporal_loss`` targets).

    Math:
        ``on_time`` for the label's class, ``off_time`` for the others; negative times count
        from the end (``-1`` is the last step, ``T - 1``).

    Returns:
        Float ``[B, C]`` of times in ``[0, T - 1]``.

    Example:
        >>> import torch
        >>> target_times(torch.tensor([0]), 3, 10)
        tensor([[0., 9., 9.]])
    """
    _check_T(T, "target_times")
    times = []
    for name, t in (("on_time", on_time), ("off_time", off_time)):
        if not -T <= t <= T - 1:
            raise ValueError(f"target_times: {name} must lie in [-T, T - 1] = [{-T}, {T - 1}], got {t!r}")
        times.append(t % T)
    return target_one_hot(y, num_classes, on=times[0], off=times[1])


def check_labels(y: Tensor, num_classes: int, who: str, batch: int | None = None) -> Tensor:
    """Validate integer class labels: integer dtype, values in ``[0, num_classes)``, batch size."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{who}: labels must be an integer torch.Tensor [B], got {type(y).__name__}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{who}: labels must be integer class indices [B], got dtype {y.dtype}")
    if batch is not None and (y.ndim != 1 or y.shape[0] != batch):
        raise ValueError(f"{who}: labels must have shape [B] = [{batch}], got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{who}: labels must lie in [0, {num_classes - 1}] ({num_classes} classes), "
            f"got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y.long()


# ----------------------------------------------------------------------------- modules


class Direct(nn.Module):
    """Module form of :func:`direct` (snetx ``DirectEncoder(T)``).

    Args:
        T: number of time steps.
        batch_first: return ``[B, T, *features]``.

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> Direct(4)(torch.zeros(2, 3)).shape
        torch.Size([4, 2, 3])
    """

    def __init__(self, T: int, *, batch_first: bool = False) -> None:
        super().__init__()
        self.T = _check_T(T, "Direct")
        self.batch_first = bool(batch_first)

    def forward(self, x: Tensor) -> Tensor:
        return direct(x, self.T, batch_first=self.batch_first)

    def extra_repr(self) -> str:
        return f"T={self.T}" + (", batch_first=True" if self.batch_first else "")


class Poisson(nn.Module):
    """Module form of :func:`poisson` (norse ``PoissonEncoder``, spikingjelly ``PoissonEncoder``).

    Args:
        T: number of time steps.
        f_max: maximal rate (norse form ``p = x f_max dt``, any real ``x``, norse's draws);
            ``None`` uses ``p = x`` with ``x`` in [0, 1].
        dt: step length in seconds (with ``f_max``).
        batch_first: return ``[B, T, *features]``.

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features]``.

    ``forward(x, generator=None)`` takes the generator per call, so the module itself holds
    no random state.

    Example:
        >>> import torch
        >>> enc = Poisson(8)
        >>> enc(torch.full((2, 3), 0.5), generator=torch.Generator().manual_seed(1)).shape
        torch.Size([8, 2, 3])
    """

    def __init__(
        self, T: int, *, f_max: float | None = None, dt: float = 1e-3, batch_first: bool = False
    ) -> None:
        super().__init__()
        self.T = _check_T(T, "Poisson")
        self.f_max = f_max
        self.dt = dt
        self.batch_first = bool(batch_first)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return poisson(x, self.T, generator, f_max=self.f_max, dt=self.dt, batch_first=self.batch_first)

    def extra_repr(self) -> str:
        s = f"T={self.T}"
        if self.f_max is not None:
            s += f", f_max={self.f_max}, dt={self.dt}"
        return s + (", batch_first=True" if self.batch_first else "")


class _Encoder(nn.Module):
    """A deterministic encoder module: holds ``T`` and the function's keyword options, no state."""

    def __init__(self, T: int, **options: object) -> None:
        super().__init__()
        self.T = _check_T(T, type(self).__name__)
        fn = _MODULE_FUNCTIONS[type(self).__name__]
        # fail at construction, not at the first forward, on a misspelt option
        try:
            inspect.signature(fn).bind(None, T, **options)
        except TypeError as e:
            raise TypeError(f"{type(self).__name__}: bad option for {fn.__name__}(): {e}") from None
        self.options = options

    def extra_repr(self) -> str:
        return ", ".join([f"T={self.T}", *(f"{k}={v!r}" for k, v in self.options.items())])


class ConstantCurrentLIF(_Encoder):
    """Module form of :func:`constant_current_lif` (norse ``ConstantCurrentLIFEncoder``).

    Args:
        T: number of time steps.
        **options: keyword arguments of :func:`constant_current_lif` (``tau``, ``dt``, ``v_th``, ...).

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> ConstantCurrentLIF(32)(torch.rand(2, 5)).shape
        torch.Size([32, 2, 5])
    """

    def forward(self, x: Tensor) -> Tensor:
        return constant_current_lif(x, self.T, **self.options)  # type: ignore[arg-type]


class SpikeLatencyLIF(_Encoder):
    """Module form of :func:`spike_latency_lif` (norse ``SpikeLatencyLIFEncoder``).

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features]``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return spike_latency_lif(x, self.T, **self.options)  # type: ignore[arg-type]


class Latency(_Encoder):
    """Module form of :func:`latency` (snntorch ``spikegen.latency``, spikingjelly ``LatencyEncoder``).

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features]``.

    Example:
        >>> import torch
        >>> Latency(5, linear=True, normalize=True)(torch.tensor([[1.0, 0.0]])).argmax(0)
        tensor([[0, 4]])
    """

    def forward(self, x: Tensor) -> Tensor:
        return latency(x, self.T, **self.options)  # type: ignore[arg-type]


class Population(_Encoder):
    """Module form of :func:`population`; ``forward(x, generator=None)``.

    Args:
        T: number of time steps.
        n: fields per value.
        **options: keyword arguments of :func:`population`.

    Shape:
        input ``[B, *features]`` -> output ``[T, B, *features, n]``.
    """

    def __init__(self, T: int, n: int, **options: object) -> None:
        super().__init__(T, n=n, **options)
        self.n = self.options.pop("n")

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return population(x, self.T, self.n, generator, **self.options)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"n={self.n}, " + super().extra_repr()


class Delta(nn.Module):
    """Module form of :func:`delta` (snntorch ``spikegen.delta``); keyword options as the function.

    Shape:
        input ``[T, B, *features]`` -> output of the same shape.
    """

    def __init__(self, threshold: float = 0.1, **options: object) -> None:
        super().__init__()
        self.threshold = threshold
        self.options = options

    def forward(self, xs: Tensor) -> Tensor:
        return delta(xs, self.threshold, **self.options)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return ", ".join([f"threshold={self.threshold}", *(f"{k}={v!r}" for k, v in self.options.items())])


_MODULE_FUNCTIONS = {
    "ConstantCurrentLIF": constant_current_lif,
    "SpikeLatencyLIF": spike_latency_lif,
    "Latency": latency,
    "Population": population,
}
