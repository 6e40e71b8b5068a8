"""One test per bad-input case: each error says what was expected and what came."""

from __future__ import annotations

import pytest
import torch

import spikekit as spk


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"xs must have shape \[T, B, \*features\], got \(5,\) \(1 dims\)"):
        spk.LIF()(torch.ones(5))
    with pytest.raises(ValueError, match=r"x must have shape \[B, \*features\], got \(\) \(0 dims\)"):
        spk.LIF().step(torch.tensor(1.0))


def test_wrong_feature_shape_names_both_shapes():
    n = spk.LIF(shape=(3,))
    with pytest.raises(
        ValueError,
        match=r"must end in the neuron shape \(3,\) \(\[T, B, \*features\]; size-1 dims broadcast\), got \(2, 4, 5\)",
    ):
        n(torch.ones(2, 4, 5))


def test_batch_first_layout_hint():
    n = spk.LIF()
    xs = torch.ones(4, 7, 3)  # [B=4, T=7, 3] given to a time-first neuron with a [B, 3] state
    state = n.initial_state(torch.ones(4, 3))
    with pytest.raises(
        ValueError,
        match=r"state.v has shape \(4, 3\) but the input's time slice has shape \(7, 3\).*batch-first",
    ):
        n.scan(xs, state)


def test_non_float_input():
    with pytest.raises(
        TypeError, match=r"must be a floating-point tensor, got dtype torch.int64; convert it with .float\(\)"
    ):
        spk.IF()(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor, got list"):
        spk.IF()([[1.0]])  # type: ignore[arg-type]


def test_empty_time():
    with pytest.raises(ValueError, match=r"has no time steps \(T = 0\)"):
        spk.LIF()(torch.ones(0, 2, 3))


def test_state_mismatch_shape_dtype_type():
    n = spk.CubaLIF()
    x = torch.ones(2, 3)
    _, s = n.step(x)
    with pytest.raises(
        ValueError,
        match=r"state.v has shape \(2, 3\) but the input's time slice has shape \(5, 3\).*fresh state",
    ):
        n.step(torch.ones(5, 3), s)
    with pytest.raises(
        TypeError, match=r"state\.v has dtype torch\.float32 but the input has torch\.float64"
    ):
        n.step(x.double(), s)
    with pytest.raises(TypeError, match=r"state must be a CubaLIFState\('v', 'i'\), got Tensor"):
        n.step(x, torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"state must be a CubaLIFState"):
        n.step(x, (torch.zeros(2, 3),))


def test_batch_change_in_stepwise_raises_instead_of_resizing():
    n = spk.LIF()
    with spk.stepwise(n):
        n(torch.ones(4, 3))
        with pytest.raises(ValueError, match="batch size changes need a fresh state"):
            n(torch.ones(2, 3))
        # the failed call left the carried state intact and usable
        assert n._stream.state.v.shape == (4, 3)
        n(torch.ones(4, 3))
        spk.reset(n)
        n(torch.ones(2, 3))


def test_nan_inf_check_is_opt_in():
    xs = torch.ones(3, 2, 2)
    xs[1, 0, 0] = float("nan")
    xs[2, 1, 1] = float("inf")
    spk.LIF()(xs)  # off by default: no cost on the hot path
    with pytest.raises(ValueError, match=r"contains 2 NaN/inf values \(check_finite=True\)"):
        spk.LIF(check_finite=True)(xs)


@pytest.mark.parametrize(
    ("make", "msg"),
    [
        (lambda: spk.LIF(tau=0.0), r"tau must be finite and > 0, got 0.0"),
        (lambda: spk.LIF(tau=-2.0), r"tau must be finite and > 0"),
        (lambda: spk.LIF(tau=0.5, dt=1.0), r"tau must be >= dt"),
        (lambda: spk.LIF(tau=2.0, beta=0.5), r"give either tau or beta, not both"),
        (lambda: spk.LIF(beta=1.5), r"beta must be in \[0, 1\], got 1.5"),
        (lambda: spk.CubaLIF(tau_syn=0.0), r"tau_syn must be finite and > 0"),
        (lambda: spk.ALIF(tau_adapt=float("inf")), r"tau_adapt must be finite and > 0"),
        (lambda: spk.LIF(dt=0.0), r"dt must be a finite number > 0, got 0.0"),
        (lambda: spk.LIF(v_th=0.0, v_reset=0.0), r"with reset='hard', v_th must be > v_reset"),
        (lambda: spk.IF(v_th=-1.0), r"v_th must be > v_reset"),
        (lambda: spk.LIF(v_th=float("nan")), r"LIF: v_th must be finite, got nan"),
        (lambda: spk.LIF(reset="zero"), r"reset must be one of \('hard', 'soft', 'none'\), got 'zero'"),
        (lambda: spk.LIF(surrogate="atanh"), r"unknown surrogate 'atanh'; expected one of"),
        (
            lambda: spk.LIF(learn="tua"),
            r"LIF: cannot learn 'tua'; learnable: beta, tau, v_leak, v_reset, v_th",
        ),
        (lambda: spk.LIF(beta=1.0, learn="beta"), r"a learnable beta must lie strictly inside \(0, 1\)"),
        (lambda: spk.LIF(shape=(0, 2)), r"shape must have positive sizes"),
        (lambda: spk.LIF(shape="lazy"), r"shape must be None, 'infer' or a tuple of ints, got 'lazy'"),
        (
            lambda: spk.LIF(v_th=torch.ones(3), shape=(4,)),
            r"v_th has shape \(3,\) but the neuron shape is \(4,\)",
        ),
        (lambda: spk.LIF(detach_reset=1), r"detach_reset must be a bool, got 1"),
    ],
)
def test_invalid_hyper_parameters(make, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        make()


def test_soft_reset_allows_threshold_below_reset():
    spk.LIF(v_th=0.5, v_reset=1.0, reset="soft")  # soft reset ignores v_reset; only hard reset forbids it


def test_unsized_infer_neuron_explains_the_dry_run():
    with pytest.raises(RuntimeError, match="has not seen an input yet; call it once on data"):
        spk.LIF(shape="infer").params()


def test_device_mismatch_is_clear():
    n = spk.LIF(shape=3).to("meta")
    with pytest.raises(ValueError, match="xs is on cpu but the neuron's parameters are on meta"):
        n(torch.ones(2, 1, 3))
