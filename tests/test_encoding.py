"""Encoders: exact tests for deterministic ones, statistics for random ones, peer parity, errors."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

import spikekit as spk
from spikekit import encoding as E

# ----------------------------------------------------------------------------- direct


def test_direct_repeats_and_layouts():
    x = torch.randn(3, 4, 5)
    zs = E.direct(x, 6)
    assert zs.shape == (6, 3, 4, 5)
    assert all(torch.equal(z, x) for z in zs)
    assert torch.equal(E.direct(x, 6, batch_first=True), zs.transpose(0, 1))
    zs[0, 0, 0, 0] = 99.0  # a copy: writing must not touch x
    assert x[0, 0, 0] != 99.0


def test_direct_gradient_sums_over_time():
    x = torch.randn(2, 3, requires_grad=True)
    w = torch.randn(5, 2, 3)
    (E.direct(x, 5) * w).sum().backward()
    torch.testing.assert_close(x.grad, w.sum(0))


def test_direct_matches_snetx_direct_encoder():
    algo = pytest.importorskip("snetx.snn.algorithm")
    x = torch.randn(4, 3, 8, 8)
    # snetx puts time second ([B, T, ...]); ours is time-first unless batch_first
    torch.testing.assert_close(E.Direct(5, batch_first=True)(x), algo.DirectEncoder(5)(x), rtol=0, atol=0)
    torch.testing.assert_close(E.Direct(5)(x), algo.DirectEncoder(5)(x).transpose(0, 1), rtol=0, atol=0)


# ----------------------------------------------------------------------------- poisson


def test_poisson_rates_converge_to_input():
    # Each element's empirical rate over T Bernoulli draws has std sqrt(p (1 - p) / T);
    # with a fixed generator every one of the 101 rates must lie within 4.5 std of p.
    T = 4000
    p = torch.linspace(0, 1, 101).view(1, 101)
    zs = E.poisson(p, T, generator=torch.Generator().manual_seed(0))
    assert zs.shape == (T, 1, 101)
    assert set(zs.unique().tolist()) <= {0.0, 1.0}
    est = zs.mean(0)
    tol = 4.5 * torch.sqrt(p * (1 - p) / T) + 1e-12
    assert bool(((est - p).abs() <= tol).all()), (est - p).abs().max()
    assert float(est[0, 0]) == 0.0 and float(est[0, -1]) == 1.0


def test_poisson_f_max_form_rate():
    T = 4000
    x = torch.tensor([[0.25, 0.5, 1.0]])
    zs = E.poisson(x, T, generator=torch.Generator().manual_seed(1), f_max=200.0, dt=1e-3)
    p = x * 0.2
    assert bool(((zs.mean(0) - p).abs() <= 4.5 * torch.sqrt(p * (1 - p) / T)).all())


def test_poisson_generator_reproducible_and_independent():
    x = torch.full((8, 16), 0.5)
    a = E.poisson(x, 20, generator=torch.Generator().manual_seed(7))
    b = E.poisson(x, 20, generator=torch.Generator().manual_seed(7))
    c = E.poisson(x, 20, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(3)
    d = E.poisson(x, 20)
    torch.manual_seed(3)
    assert torch.equal(d, E.Poisson(20)(x))
    assert torch.equal(
        E.poisson(x, 20, generator=torch.Generator().manual_seed(7), batch_first=True), a.transpose(0, 1)
    )


def test_poisson_module_is_stateless_and_copyable():
    enc = E.Poisson(10, f_max=100.0)
    assert "f_max=100.0" in repr(enc)
    assert list(enc.state_dict()) == []
    for clone in (copy.deepcopy(enc), pickle.loads(pickle.dumps(enc))):
        x = torch.rand(2, 3)
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(clone(x, g1), enc(x, g2))


def test_poisson_equals_norse_with_same_generator():
    enc = pytest.importorskip("norse.torch.functional.encode")
    x = torch.rand(5, 7)
    for f_max, dt in ((100.0, 1e-3), (700.0, 1e-3)):
        a = enc.poisson_encode(x, 30, f_max=f_max, dt=dt, generator=torch.Generator().manual_seed(11))
        b = E.poisson(x, 30, torch.Generator().manual_seed(11), f_max=f_max, dt=dt)
        assert torch.equal(a, b)


def test_poisson_statistics_match_snntorch_and_spikingjelly():
    spikegen = pytest.importorskip("snntorch.spikegen")
    sj = pytest.importorskip("spikingjelly.activation_based.encoding")
    T = 3000
    x = torch.linspace(0.05, 0.95, 10).view(1, 10)
    ours = E.poisson(x, T, generator=torch.Generator().manual_seed(2)).mean(0)
    torch.manual_seed(2)
    snn = spikegen.rate(x, num_steps=T).mean(0)
    enc = sj.PoissonEncoder()
    sjr = torch.stack([enc(x) for _ in range(T)]).mean(0)
    # two independent estimates of the same p differ by at most 4.5 sqrt(2 p (1-p) / T)
    tol = 4.5 * torch.sqrt(2 * x * (1 - x) / T)
    assert bool(((ours - snn).abs() <= tol).all())
    assert bool(((ours - sjr).abs() <= tol).all())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: E.poisson(torch.tensor([[1.5]]), 4), r"\[0, 1\].*1\.5"),
        (lambda: E.poisson(torch.tensor([[-0.1]]), 4), r"\[0, 1\]"),
        (lambda: E.poisson(torch.tensor([[float("nan")]]), 4), "NaN"),
        (lambda: E.poisson(torch.rand(2, 2), 0), "positive int.*0"),
        (lambda: E.poisson(torch.rand(2, 2), 2.5), "positive int"),
        (lambda: E.poisson(torch.tensor(0.5), 3), "0-d"),
        (lambda: E.poisson(torch.rand(2, 2), 3, f_max=2000.0, dt=1e-3), r"f_max \* dt"),
        (lambda: E.direct(torch.rand(2), -1), "positive int"),
        (lambda: E.Direct(0), "positive int"),
    ],
)
def test_bad_inputs_raise_with_clear_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_tensor_input_raises_type_error():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        E.poisson([0.1, 0.2], 3)


# ----------------------------------------------------------------------------- LIF encoders


def test_constant_current_lif_hand_computed_and_shares_the_lif_rule():
    # beta = 0.9: v1 = 0.1 x, v2 = 0.9 v1 + 0.1 x -> x = 8 spikes at step 2, x = 16 at both
    zs = E.constant_current_lif(torch.tensor([[2.0, 4.0, 8.0, 16.0]]), 2)
    torch.testing.assert_close(zs.squeeze(1), torch.tensor([[0.0, 0, 0, 1], [0, 0, 1, 1]]))
    x = torch.rand(6, 9) * 4
    ref = spk.LIF(tau=5.0, dt=1.0, v_th=0.8)(E.direct(x, 25))
    assert torch.equal(E.constant_current_lif(x, 25, tau=5.0, v_th=0.8), ref)


def test_constant_current_lif_monotone_and_differentiable():
    x = torch.linspace(0, 5, 50).view(1, 50).requires_grad_(True)
    zs = E.constant_current_lif(x, 40)
    counts = zs.sum(0).flatten()
    assert bool((counts[1:] >= counts[:-1]).all()) and counts[0] == 0 and counts[-1] > 10
    zs.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_lif_encoders_equal_norse():
    norse = pytest.importorskip("norse.torch")
    x = torch.rand(16, 50) * 3
    assert torch.equal(E.ConstantCurrentLIF(32)(x), norse.ConstantCurrentLIFEncoder(32)(x))
    assert torch.equal(E.SpikeLatencyLIF(32)(x), norse.SpikeLatencyLIFEncoder(32)(x))
    p = norse.LIFParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.5))
    a = norse.ConstantCurrentLIFEncoder(20, p=p, dt=1e-3)(x)
    assert torch.equal(E.constant_current_lif(x, 20, tau=5e-3, dt=1e-3, v_th=0.5), a)


def test_spike_latency_lif_one_spike_earlier_for_larger_current():
    x = torch.linspace(1.2, 6, 30).view(1, 30)
    zs = E.spike_latency_lif(x, 30)
    assert bool((zs.sum(0) == 1).all())
    t = zs.argmax(0).flatten()
    assert bool((t[1:] <= t[:-1]).all()) and t[0] > t[-1]


def test_first_spikes_keeps_only_the_first():
    zs = torch.tensor([[0.0, 1, 0], [1, 1, 0], [1, 0, 0]]).unsqueeze(1)
    out = E.first_spikes(zs).squeeze(1)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(E.first_spikes(zs.transpose(0, 1), batch_first=True), out.unsqueeze(0))


# ----------------------------------------------------------------------------- latency


def test_latency_hand_computed_linear():
    zs = E.latency(torch.tensor([[0.02, 0.5, 1.0]]), 5, linear=True, normalize=True).squeeze(1)
    # times (T-1)(1 - x) = 3.92, 2, 0 -> rounded 4, 2, 0
    torch.testing.assert_close(zs.argmax(0), torch.tensor([4, 2, 0]))
    assert bool((zs.sum(0) == 1).all())


def test_latency_ordering_and_one_spike_each():
    x = torch.rand(4, 64)
    for linear in (True, False):
        zs = E.latency(x, 50, linear=linear, normalize=True)
        assert bool((zs.sum(0) == 1).all())
        t = E.latency_times(x, 50, linear=linear, normalize=True)
        order = x.flatten().argsort(descending=True)
        assert bool((t.flatten()[order].diff() >= 0).all())  # larger input -> no later
        assert float(t.max()) <= 49 + 1e-4
    # the log code normalises by the largest time in the tensor; the linear one saturates at
    # the threshold: t(x <= threshold) = (T - 1)(1 - threshold)
    assert float(E.latency_times(x, 50, normalize=True).max()) == pytest.approx(49, abs=1e-4)
    lin = E.latency_times(torch.tensor([[0.0, 1.0]]), 50, linear=True, normalize=True)
    torch.testing.assert_close(lin, torch.tensor([[49 * 0.99, 0.0]]))


def test_latency_log_formula():
    x = torch.tensor([[0.5, 0.9]])
    t = E.latency_times(x, 10, tau=2.0, threshold=0.1, first_spike_time=1)
    torch.testing.assert_close(t, 2.0 * torch.log(x / (x - 0.1)) + 1)


def test_latency_clip_silences_below_threshold():
    x = torch.tensor([[0.001, 0.5]])
    zs = E.latency(x, 10, linear=True, normalize=True, clip=True)
    assert zs[:, 0, 0].sum() == 0 and zs[:, 0, 1].sum() == 1


@pytest.mark.parametrize("linear", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("first", [0, 3])
def test_latency_equals_snntorch(linear, normalize, clip, first):
    spikegen = pytest.importorskip("snntorch.spikegen")
    x = torch.rand(8, 20, generator=torch.Generator().manual_seed(5))
    x[0, :3] = torch.tensor([0.0, 0.005, 1.0])  # below threshold and saturated inputs
    kw = dict(
        linear=linear, normalize=normalize, clip=clip, first_spike_time=first, tau=1.0 if normalize else 2.0
    )
    T = 40
    ref = spikegen.latency(x, num_steps=T, **kw)
    assert torch.equal(E.latency(x, T, **kw), ref)


def test_latency_linear_equals_spikingjelly():
    sj = pytest.importorskip("spikingjelly.activation_based.encoding")
    x = torch.rand(8, 20, generator=torch.Generator().manual_seed(6))
    enc = sj.LatencyEncoder(12, enc_function="linear")  # single-step: call T times
    ref = torch.stack([enc(x) for _ in range(12)])
    assert torch.equal(E.Latency(12, linear=True, normalize=True, threshold=0.0)(x), ref)


def test_latency_errors():
    with pytest.raises(ValueError, match=r"latest spike time.*normalize=True"):
        E.latency(torch.tensor([[0.0, 1.0]]), 5)
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\)"):
        E.latency(torch.rand(2, 2), 5, threshold=0.0)
    with pytest.raises(ValueError, match="first_spike_time"):
        E.latency(torch.rand(2, 2), 5, first_spike_time=5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.latency(torch.tensor([[2.0]]), 5)


# ----------------------------------------------------------------------------- delta


def test_delta_hand_computed():
    b = torch.tensor([1, 2, 0, 2, 2.9]).view(5, 1)
    torch.testing.assert_close(E.delta(b, 1.0).flatten(), torch.tensor([1.0, 1, 0, 1, 0]))
    torch.testing.assert_close(
        E.delta(b, 1.0, padding=True, off_spike=True).flatten(), torch.tensor([0.0, 1, -1, 1, 0])
    )


@pytest.mark.parametrize("padding", [True, False])
@pytest.mark.parametrize("off_spike", [True, False])
def test_delta_equals_snntorch(padding, off_spike):
    spikegen = pytest.importorskip("snntorch.spikegen")
    xs = torch.randn(12, 3, 5, generator=torch.Generator().manual_seed(0))
    ref = spikegen.delta(xs, threshold=0.5, padding=padding, off_spike=off_spike)
    assert torch.equal(E.Delta(0.5, padding=padding, off_spike=off_spike)(xs), ref)
    bf = E.delta(xs.transpose(0, 1), 0.5, padding=padding, off_spike=off_spike, batch_first=True)
    assert torch.equal(bf, ref.transpose(0, 1))


def test_delta_errors():
    with pytest.raises(ValueError, match=r"\[T, B, \*features\]"):
        E.delta(torch.rand(5), 0.1)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        E.delta(torch.rand(5, 2), 0.0)


# ----------------------------------------------------------------------------- population


def test_gaussian_fields_values():
    a = E.gaussian_fields(torch.tensor([[0.0, 0.5]]), 3)
    e = math.exp(-0.5)
    torch.testing.assert_close(a[0, 0], torch.tensor([1.0, e, math.exp(-2.0)]))
    torch.testing.assert_close(a[0, 1], torch.tensor([e, 1.0, e]))


def test_population_peaks_at_nearest_centre():
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(1))
    n = 9
    centres = torch.linspace(0, 1, n)
    nearest = (x.unsqueeze(-1) - centres).abs().argmin(-1)
    det = E.population(x, 50, n, mode="deterministic")
    assert det.shape == (50, 64, 3, n)
    # the nearest field is the most active one; deterministic counts preserve that order
    assert torch.equal(E.gaussian_fields(x, n).argmax(-1), nearest)
    counts = det.sum(0)
    assert bool((counts.gather(-1, nearest.unsqueeze(-1)).squeeze(-1) == counts.max(-1).values).all())
    T = 2000
    rnd = E.Population(T, n)(x[:4], generator=torch.Generator().manual_seed(2))
    a = E.gaussian_fields(x[:4], n)
    assert bool(((rnd.mean(0) - a).abs() <= 4.5 * torch.sqrt(a * (1 - a) / T) + 1e-6).all())


def test_population_deterministic_equals_spikingjelly():
    sj = pytest.importorskip("spikingjelly.activation_based.encoding")
    obs = torch.rand(5, 4, generator=torch.Generator().manual_seed(3))
    ref = sj.PopSpikeEncoderDeterministic(4, 6, 10, (0.0, 1.0), 0.2)(obs).detach()
    ours = E.population(obs, 10, 6, sigma=0.2, mode="deterministic").flatten(2)
    assert torch.equal(ours, ref)


def test_population_errors():
    with pytest.raises(ValueError, match="mode must be"):
        E.population(torch.rand(2, 2), 4, 3, mode="rate")
    with pytest.raises(ValueError, match=r"n .*>= 1"):
        E.gaussian_fields(torch.rand(2, 2), 0)
    with pytest.raises(ValueError, match="sigma"):
        E.gaussian_fields(torch.rand(2, 2), 3, sigma=-1.0)


# ----------------------------------------------------------------------------- targets


def test_target_encoders():
    y = torch.tensor([2, 0])
    torch.testing.assert_close(E.target_one_hot(y, 3), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    torch.testing.assert_close(
        E.target_counts(y, 3, 10, correct_rate=0.75, incorrect_rate=0.25),
        torch.tensor([[2.0, 2, 7], [7, 2, 2]]),
    )
    torch.testing.assert_close(E.target_times(y, 3, 10, on_time=2), torch.tensor([[9.0, 9, 2], [2, 9, 9]]))


def test_target_one_hot_matches_snntorch_targets_convert():
    spikegen = pytest.importorskip("snntorch.spikegen")
    y = torch.tensor([0, 3, 1, 3])
    for on, off in ((5.0, 2.0), (1.0, 3.0), (0.0, 7.0)):
        ref = spikegen.targets_convert(y, num_classes=4, on_target=on, off_target=off)
        torch.testing.assert_close(E.target_one_hot(y, 4, on=on, off=off), ref.float())
    # snntorch computes max(one_hot * on, off) when on > off, so a negative off value becomes 0
    # there; ours keeps the off value as given (documented in spikekit.losses).
    assert float(E.target_one_hot(y, 4, on=5.0, off=-1.0).min()) == -1.0


@pytest.mark.parametrize(
    ("y", "exc", "match"),
    [
        (torch.tensor([0, 3]), ValueError, r"\[0, 2\].*\[0, 3\]"),
        (torch.tensor([-1]), ValueError, r"\[0, 2\]"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer"),
        ([0, 1], TypeError, "torch.Tensor"),
    ],
)
def test_target_label_errors(y, exc, match):
    with pytest.raises(exc, match=match):
        E.target_one_hot(y, 3)


def test_target_time_and_rate_errors():
    with pytest.raises(ValueError, match="off_time"):
        E.target_times(torch.tensor([0]), 3, 5, off_time=7)
    with pytest.raises(ValueError, match="correct_rate"):
        E.target_counts(torch.tensor([0]), 3, 5, correct_rate=1.5)


def test_encoder_modules_reject_unknown_options_at_construction():
    with pytest.raises(TypeError, match=r"ConstantCurrentLIF.*tau_mem"):
        E.ConstantCurrentLIF(10, tau_mem=5.0)
    with pytest.raises(TypeError, match="Latency"):
        E.Latency(10, lineer=True)
    enc = E.Population(6, 4, mode="deterministic")
    assert enc.n == 4 and "n=4" in repr(enc) and enc(torch.rand(2, 3)).shape == (6, 2, 3, 4)
