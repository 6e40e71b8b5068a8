"""Losses: hand-computed values, gradients vs reference formulas, parity with snntorch / snetx."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spikekit import losses as L

T, B, C = 12, 6, 4


def _spikes(seed: int, shape=(T, B, C), p: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def _labels(seed: int, n: int = B, c: int = C) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def _agree(ours, ref, xs: torch.Tensor, y, *, per_sample_ref=None) -> None:
    """Same value and same gradient w.r.t. the outputs."""
    a = xs.clone().requires_grad_(True)
    b = xs.clone().requires_grad_(True)
    la = ours(a, y.clone() if isinstance(y, torch.Tensor) else y)
    lb = ref(b, y.clone() if isinstance(y, torch.Tensor) else y)
    if per_sample_ref is not None:
        lb = per_sample_ref(lb)
    torch.testing.assert_close(la, lb.reshape(la.shape), rtol=1e-5, atol=1e-6)
    la.sum().backward()
    lb.sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- hand-computed values


def test_ce_count_hand_value():
    zs = torch.zeros(3, 1, 2)
    zs[:, 0, 0] = 1  # counts (3, 0)
    expected = -math.log(math.exp(3) / (math.exp(3) + 1))
    assert L.ce_count_loss()(zs, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    assert L.ce_count_loss()(zs, torch.tensor([1])).item() == pytest.approx(expected + 3, rel=1e-6)


def test_mse_count_hand_value_and_truncation():
    zs = torch.zeros(10, 1, 2)
    zs[:3, 0, 0] = 1
    # targets int(10 * 0.75) = 7 and int(10 * 0.25) = 2: ((3 - 7)^2 + (0 - 2)^2) / 2 / 10
    assert L.mse_count_loss(0.75, 0.25)(zs, torch.tensor([0])).item() == pytest.approx(1.0)


def test_ce_rate_and_max_membrane_hand_values():
    zs = torch.zeros(2, 1, 2)
    zs[0, 0, 1] = 1  # step 0 favours class 1, step 1 is uniform
    expected = 0.5 * (-math.log(math.e / (1 + math.e)) + math.log(2))
    assert L.ce_rate_loss()(zs, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)
    vs = torch.tensor([[[0.0, 2.0]], [[1.0, -1.0]]])  # max over time: (1, 2)
    assert L.ce_max_membrane_loss()(vs, torch.tensor([0])).item() == pytest.approx(
        math.log(1 + math.e), rel=1e-6
    )


def test_mse_membrane_and_rate_hand_values():
    vs = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    # label 0: step 0 errors (0, 1), step 1 errors (1, 0): mean 0.5
    assert L.mse_membrane_loss()(vs, torch.tensor([0])).item() == pytest.approx(0.5)
    zs = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # rates (1, 0.5)
    assert L.mse_rate_loss()(zs, torch.tensor([1])).item() == pytest.approx((1 + 0.25) / 2)


def test_temporal_hand_values():
    zs = torch.zeros(5, 1, 2)
    zs[1, 0, 0] = 1  # class 0 first fires at 1, class 1 silent -> T - 1 = 4
    # targets: label 1 -> class 1 at 0, class 0 at 4: ((1 - 4)^2 + (4 - 0)^2) / 2 / 25
    assert L.mse_temporal_loss()(zs, torch.tensor([1])).item() == pytest.approx(12.5 / 25)
    assert L.ce_temporal_loss()(zs, torch.tensor([0])).item() == pytest.approx(
        math.log(1 + math.exp(-3)), rel=1e-6
    )


def test_tet_hand_value():
    o = torch.tensor([[[0.0, 0.0]], [[2.0, 0.0]]])
    ce = 0.5 * (math.log(2) + math.log(1 + math.exp(-2)))
    mse = ((1 + 1) + (1 + 1)) / 4  # (o - 1)^2 over all four entries
    assert L.tet_loss(lamb=0.2)(o, torch.tensor([0])).item() == pytest.approx(0.8 * ce + 0.2 * mse, rel=1e-6)


# ----------------------------------------------------------------------------- reference formulas


def test_tet_matches_paper_formula_value_and_gradient():
    def paper(o, y, lamb=0.05, phi=1.0):
        ce = sum(F.cross_entropy(o[t], y) for t in range(o.shape[0])) / o.shape[0]
        return (1 - lamb) * ce + lamb * F.mse_loss(o, torch.full_like(o, phi))

    o = torch.randn(T, B, C, generator=torch.Generator().manual_seed(0))
    y = _labels(1)
    _agree(L.tet_loss(lamb=0.05), paper, o, y)
    _agree(L.tet_loss(lamb=0.3, phi=0.5), lambda o, y: paper(o, y, 0.3, 0.5), o, y)
    # batch-first input gives the same loss and gradient
    _agree(
        L.tet_loss(lamb=0.05, batch_first=True),
        lambda o, y: paper(o.transpose(0, 1), y),
        o.transpose(0, 1),
        y,
    )


def test_count_losses_match_reference_formulas():
    zs = _spikes(2)
    y = _labels(3)

    def mse_ref(z, y):
        tgt = F.one_hot(y, C).float() * (int(T * 0.8) - int(T * 0.2)) + int(T * 0.2)
        return ((z.sum(0) - tgt) ** 2).mean() / T

    _agree(L.mse_count_loss(0.8, 0.2), mse_ref, zs, y)
    _agree(L.ce_count_loss(), lambda z, y: F.cross_entropy(z.sum(0), y), zs, y)
    _agree(L.mse_rate_loss(), lambda z, y: F.mse_loss(z.mean(0), F.one_hot(y, C).float()), zs, y)


def test_gradcheck_float64():
    o = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 4, 2])
    for loss in (L.tet_loss(lamb=0.1), L.ce_rate_loss(), L.ce_max_membrane_loss(), L.mse_membrane_loss()):
        assert torch.autograd.gradcheck(lambda o, loss=loss: loss(o, y), (o,))


def test_reductions_and_weights_are_consistent():
    o = torch.randn(T, B, C, generator=torch.Generator().manual_seed(4))
    y = _labels(5)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    for cls in (L.ce_rate_loss, L.ce_max_membrane_loss, L.mse_membrane_loss, L.tet_loss, L.mse_rate_loss):
        per = cls(reduction="none")(o, y)
        assert per.shape == (B,)
        torch.testing.assert_close(cls()(o, y), per.mean())
        torch.testing.assert_close(cls(reduction="sum")(o, y), per.sum())
        torch.testing.assert_close(cls(weight=w)(o, y), (per * w[y]).mean())


def test_tet_lamb_zero_equals_snetx_and_documents_the_difference():
    algo = pytest.importorskip("snetx.snn.algorithm")
    o = torch.randn(B, T, C, generator=torch.Generator().manual_seed(6))  # snetx: [B, T, C]
    y = _labels(7)
    ce = torch.nn.CrossEntropyLoss()
    _agree(L.tet_loss(lamb=0.0, batch_first=True), lambda o, y: algo.TETLoss(ce, y, o, lamb=0.0), o, y)
    # with lamb > 0 snetx mixes in CE of the time-averaged output; we add the MSE term instead
    lamb = 0.3
    snetx = algo.TETLoss(ce, y, o, lamb=lamb)
    ours0 = L.tet_loss(lamb=0.0, batch_first=True)(o, y)
    torch.testing.assert_close(snetx, lamb * ce(o.mean(1), y) + (1 - lamb) * ours0)
    ours = L.tet_loss(lamb=lamb, batch_first=True)(o, y)
    torch.testing.assert_close(ours, (1 - lamb) * ours0 + lamb * ((o - 1.0) ** 2).mean())
    assert not torch.allclose(ours, snetx)


# ----------------------------------------------------------------------------- snntorch parity


def _sf():
    return pytest.importorskip("snntorch.functional")


@pytest.mark.parametrize("kind", ["default", "none", "weight"])
def test_ce_rate_count_max_membrane_equal_snntorch(kind):
    SF = _sf()
    zs, o, y = _spikes(8), torch.randn(T, B, C, generator=torch.Generator().manual_seed(9)), _labels(10)
    kw = {
        "default": {},
        "none": {"reduction": "none"},
        "weight": {"weight": torch.tensor([1.0, 2.0, 0.5, 3.0])},
    }[kind]
    _agree(L.ce_rate_loss(**kw), SF.ce_rate_loss(**kw), zs, y)
    _agree(L.ce_count_loss(**kw), SF.ce_count_loss(**kw), zs, y)
    _agree(L.ce_max_membrane_loss(**kw), SF.ce_max_membrane_loss(**kw), o, y)


def test_population_code_equals_snntorch():
    SF = _sf()
    zs, y = _spikes(11, (T, B, 12)), _labels(12)
    kw = {"population_code": True, "num_classes": C}
    _agree(L.ce_count_loss(**kw), SF.ce_count_loss(**kw), zs, y)
    _agree(L.mse_count_loss(0.6, 0.1, **kw), SF.mse_count_loss(0.6, 0.1, **kw), zs, y)


@pytest.mark.parametrize(("correct", "incorrect"), [(1.0, 0.0), (0.8, 0.2), (0.75, 0.3)])
def test_mse_count_equals_snntorch(correct, incorrect):
    SF = _sf()
    zs, y = _spikes(13), _labels(14)
    _agree(
        L.mse_count_loss(correct, incorrect),
        SF.mse_count_loss(correct_rate=correct, incorrect_rate=incorrect),
        zs,
        y,
    )
    _agree(
        L.mse_count_loss(correct, incorrect, reduction="none"),
        SF.mse_count_loss(correct_rate=correct, incorrect_rate=incorrect, reduction="none"),
        zs,
        y,
        per_sample_ref=lambda loss: loss.mean(-1),  # snntorch's 'none' keeps [B, C]
    )


def test_mse_membrane_equals_snntorch():
    SF = _sf()
    o, y = torch.randn(T, B, C, generator=torch.Generator().manual_seed(15)), _labels(16)
    _agree(L.mse_membrane_loss(), SF.mse_membrane_loss(), o, y)
    _agree(
        L.mse_membrane_loss(on_target=1.5, off_target=0.2),
        SF.mse_membrane_loss(on_target=1.5, off_target=0.2),
        o,
        y,
    )
    yt = torch.randint(0, C, (T, B), generator=torch.Generator().manual_seed(17))
    # snntorch's time_var_targets path cannot one-hot [T, B] labels (it raises inside
    # targets_convert), so the per-step labels are checked against the formula instead
    with pytest.raises(RuntimeError):
        SF.mse_membrane_loss(time_var_targets=True)(o, yt)

    def per_step(o, yt):
        return sum(F.mse_loss(o[t], F.one_hot(yt[t], C).float()) for t in range(T)) / T

    _agree(L.mse_membrane_loss(time_var_targets=True), per_step, o, yt)


@pytest.mark.parametrize(
    "kw",
    [
        {"on_target": 2, "off_target": T - 1},
        {"on_target": 0, "off_target": 7},
        {"on_target": 1, "off_target": T - 2, "tolerance": 2},
        {"on_target": 9, "off_target": 3},
    ],
)
def test_mse_temporal_equals_snntorch(kw):
    SF = _sf()
    zs, y = _spikes(18, p=0.15), _labels(19)
    _agree(L.mse_temporal_loss(**kw), SF.mse_temporal_loss(**kw), zs, y)


def test_mse_temporal_target_times_equal_snntorch():
    SF = _sf()
    zs = _spikes(20, p=0.15)
    times = torch.randint(0, T, (B, C), generator=torch.Generator().manual_seed(21)).float()
    _agree(L.mse_temporal_loss(target_is_time=True), SF.mse_temporal_loss(target_is_time=True), zs, times)


def test_mse_temporal_default_off_target_is_last_step():
    # snntorch's default turns off_target=-1 into 0 (see the docstring); ours means T - 1
    zs = torch.zeros(T, 1, 2)
    zs[0, 0, 1] = 1
    zs[T - 1, 0, 0] = 1
    assert L.mse_temporal_loss()(zs, torch.tensor([1])).item() == 0.0


@pytest.mark.parametrize("inverse", ["negate", "reciprocal"])
def test_ce_temporal_equals_snntorch(inverse):
    SF = _sf()
    zs, y = _spikes(22, p=0.15), _labels(23)
    _agree(L.ce_temporal_loss(inverse=inverse), SF.ce_temporal_loss(inverse=inverse), zs, y)


# ----------------------------------------------------------------------------- errors and repr


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: L.ce_rate_loss()(torch.rand(T, B), _labels(0)), ValueError, r"\[T, B, C\].*\(12, 6\)"),
        (lambda: L.ce_rate_loss(batch_first=True)(torch.rand(B, C), _labels(0)), ValueError, r"\[B, T, C\]"),
        (
            lambda: L.ce_count_loss()(torch.rand(T, B, C), torch.full((B,), C)),
            ValueError,
            r"\[0, 3\].*\[4, 4\]",
        ),
        (
            lambda: L.mse_count_loss()(torch.rand(T, B, C), torch.zeros(B + 1, dtype=torch.long)),
            ValueError,
            r"\[B\] = \[6\]",
        ),
        (lambda: L.tet_loss()(torch.rand(T, B, C), torch.zeros(B)), TypeError, "integer"),
        (lambda: L.tet_loss(lamb=1.5), ValueError, r"lamb.*\[0, 1\]"),
        (lambda: L.ce_rate_loss(reduction="avg"), ValueError, "reduction"),
        (
            lambda: L.ce_rate_loss(weight=torch.ones(3))(torch.rand(T, B, C), _labels(0)),
            ValueError,
            r"weight.*\[4\]",
        ),
        (
            lambda: L.ce_count_loss(population_code=True, num_classes=3)(torch.rand(T, B, C), _labels(0)),
            ValueError,
            "divid",
        ),
        (lambda: L.mse_count_loss(correct_rate=2.0), ValueError, "correct_rate"),
        (lambda: L.ce_temporal_loss(inverse="log"), ValueError, "inverse"),
        (lambda: L.mse_rate_loss()(torch.rand(0, B, C), _labels(0)), ValueError, "T = 0"),
        (
            lambda: L.mse_membrane_loss(time_var_targets=True)(torch.rand(T, B, C), _labels(0)),
            ValueError,
            r"\[T, B\]",
        ),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_repr_shows_options():
    assert repr(L.mse_count_loss(0.8, 0.2)) == (
        "mse_count_loss(correct_rate=0.8, incorrect_rate=0.2, population_code=False, num_classes=None)"
    )
    assert "lamb=0.05" in repr(L.tet_loss(lamb=0.05, batch_first=True))
