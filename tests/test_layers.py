"""Layers over time, each checked against a hand-written loop or hand-computed statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit.layers import (
    BNTT2d,
    Flatten,
    LILinear,
    MaxPool2d,
    Recurrent,
    Residual,
    SequenceDropout,
    TdBatchNorm2d,
    TimeDistributed,
)
from spikekit.neurons import LIFParams, LIFState, Options, lif_step


def seq(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ TimeDistributed


def test_time_distributed_equals_loop_over_time():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2), nn.Tanh())
    td = TimeDistributed(*conv)
    xs = seq(5, 4, 2, 8, 8)
    torch.testing.assert_close(td(xs), torch.stack([conv(x) for x in xs]))
    # batch_first folds [B, T] the same way
    bf = TimeDistributed(conv, batch_first=True)
    torch.testing.assert_close(bf(xs.transpose(0, 1)), td(xs).transpose(0, 1))


def test_time_distributed_batch_norm_statistics_span_time_and_batch():
    bn = nn.BatchNorm2d(3)
    xs = seq(4, 2, 3, 5, 5) * 3 + 1
    ys = TimeDistributed(bn)(xs)
    mean = xs.mean(dim=(0, 1, 3, 4))
    var = xs.var(dim=(0, 1, 3, 4), unbiased=False)
    want = (xs - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn.eps)
    torch.testing.assert_close(ys, want, rtol=1e-4, atol=1e-5)


def test_time_distributed_single_step_and_errors():
    conv = nn.Conv2d(1, 2, 3)
    td = TimeDistributed(conv)
    x = seq(3, 1, 6, 6)
    with spk.stepwise(td):  # one step [B, C, H, W] is taken only inside stepwise
        torch.testing.assert_close(td(x), conv(x))
    with pytest.raises(ValueError, match="stepwise"):  # outside, never read as a sequence
        td(x)
    with pytest.raises(ValueError, match=r"\[T, B, \*features\] with 3 feature dims"):
        td(seq(2, 3, 1, 1, 6, 6))
    with pytest.raises(ValueError, match="expected"):
        TimeDistributed(nn.Tanh())(seq(4))
    with pytest.raises(TypeError):
        TimeDistributed(lambda x: x)


def test_pool_and_flatten_keep_time():
    zs = (seq(3, 2, 4, 6, 6) > 0.5).float()
    pooled = MaxPool2d(2)(zs)
    assert pooled.shape == (3, 2, 4, 3, 3)
    assert set(pooled.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(pooled, torch.stack([nn.functional.max_pool2d(z, 2) for z in zs]))
    flat = Flatten()(pooled)
    assert flat.shape == (3, 2, 36)
    torch.testing.assert_close(flat[1, 0], pooled[1, 0].flatten())


# ------------------------------------------------------------------ normalisation


def test_tdbn_training_statistics_match_hand_computation():
    bn = TdBatchNorm2d(3, alpha=0.7, v_th=0.5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    xs = seq(4, 2, 3, 5, 5) * 2 + 3
    ys = bn(xs)
    dims = (0, 1, 3, 4)
    mean, var = xs.mean(dims), xs.var(dims, unbiased=False)
    c = (slice(None), None, None)
    want = bn.weight[c] * 0.7 * 0.5 * (xs - mean[c]) / torch.sqrt(var[c] + bn.eps) + bn.bias[c]
    torch.testing.assert_close(ys, want, rtol=1e-4, atol=1e-5)
    n = xs.numel() / 3
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var * n / (n - 1))
    # eval mode uses the running estimates
    bn.eval()
    with torch.no_grad():
        rm, rv = bn.running_mean[c], bn.running_var[c]
        want = bn.weight[c] * 0.35 * (xs - rm) / torch.sqrt(rv + bn.eps) + bn.bias[c]
        torch.testing.assert_close(bn(xs), want, rtol=1e-4, atol=1e-5)
    ys_grad = TdBatchNorm2d(3)(xs.requires_grad_())
    ys_grad.sum().backward()
    assert xs.grad is not None
    with pytest.raises(ValueError, match=r"\[T, B, 3, H, W\]"):
        bn(seq(2, 3, 5, 5))


def test_bntt_normalises_each_step_separately():
    bntt = BNTT2d(2, num_steps=4)
    xs = (
        seq(3, 5, 2, 4, 4) * torch.tensor([1.0, 3.0, 0.5])[:, None, None, None, None]
        + torch.tensor([0.0, 5.0, -2.0])[:, None, None, None, None]
    )
    ys = bntt(xs)
    for t in range(3):
        m = xs[t].mean((0, 2, 3))[:, None, None]
        v = xs[t].var((0, 2, 3), unbiased=False)[:, None, None]
        torch.testing.assert_close(ys[t], (xs[t] - m) / torch.sqrt(v + 1e-5), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bntt.bns[t].running_mean, 0.1 * xs[t].mean((0, 2, 3)))
    # the 4th BN saw nothing
    torch.testing.assert_close(bntt.bns[3].running_mean, torch.zeros(2))
    # each step has its own affine parameters
    bntt.zero_grad()
    (bntt(xs) * torch.arange(3.0)[:, None, None, None, None]).sum().backward()
    assert bntt.bns[0].bias.grad.abs().sum() == 0 and bntt.bns[2].bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="num_steps >= T"):
        bntt(seq(5, 1, 2, 4, 4))


# ------------------------------------------------------------------ dropout


def test_sequence_dropout_mask_is_shared_over_time_and_differs_between_sequences():
    torch.manual_seed(0)
    drop = SequenceDropout(0.3)
    ys = drop(torch.ones(6, 4, 500))
    assert torch.equal(ys, ys[:1].expand_as(ys))  # constant across T
    assert not torch.equal(ys[0, 0], ys[0, 1])  # different across sequences
    assert ys.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert abs(float((ys[0] == 0).float().mean()) - 0.3) < 0.05
    bf = SequenceDropout(0.5, batch_first=True)(torch.ones(4, 6, 100))
    assert torch.equal(bf, bf[:, :1].expand_as(bf))
    drop.eval()
    xs = seq(3, 2, 5)
    assert torch.equal(drop(xs), xs)
    with pytest.raises(ValueError):
        SequenceDropout(1.0)


# ------------------------------------------------------------------ recurrence


def test_recurrent_equals_explicit_loop():
    torch.manual_seed(0)
    w = nn.Linear(4, 4, bias=False)
    lif = spk.LIF(tau=3.0, v_th=0.6)
    rec = Recurrent(lif, w)
    xs = seq(8, 3, 4).abs()
    zs, state = rec.scan(xs)
    p = LIFParams(*(torch.as_tensor(v) for v in (1 - 1 / 3.0, 0.6, 0.0, 0.0)))
    s, z, want = LIFState(torch.zeros(3, 4)), torch.zeros(3, 4), []
    for x in xs:
        z, s = lif_step(x + z @ w.weight.T, s, p, Options())
        want.append(z)
    torch.testing.assert_close(zs, torch.stack(want))
    torch.testing.assert_close(state.neuron.v, s.v)
    assert zs.sum() > 0 and (zs != torch.stack([lif(xs)[t] for t in range(8)])).any()  # feedback matters
    # chunking with the carried state
    z1, s1 = rec.scan(xs[:3])
    z2, _ = rec.scan(xs[3:], s1)
    torch.testing.assert_close(torch.cat([z1, z2]), zs)
    # stepwise streaming
    with spk.stepwise(rec):
        streamed = torch.stack([rec(x) for x in xs])
    torch.testing.assert_close(streamed, zs)
    # gradients reach the recurrent weights; batch_first layout
    rec(xs).sum().backward()
    assert w.weight.grad.abs().sum() > 0
    rec_bf = Recurrent(lif, w, batch_first=True)
    torch.testing.assert_close(rec_bf(xs.transpose(0, 1)), zs.transpose(0, 1))
    with spk.record(rec) as r:
        rec(xs)
    torch.testing.assert_close(r["neuron"].v[-1], state.neuron.v)


def test_recurrent_in_ann_mode_is_an_elman_rnn_and_checks_shapes():
    w = nn.Linear(3, 3)
    rec = spk.non_spike(Recurrent(spk.IF(), w))
    xs = seq(4, 2, 3)
    h, want = torch.zeros(2, 3), []
    for x in xs:
        h = torch.relu(x + w(h))
        want.append(h)
    torch.testing.assert_close(rec(xs), torch.stack(want))
    with pytest.raises(ValueError, match="recurrent module maps"):
        Recurrent(spk.LIF(), nn.Linear(3, 2))(xs)
    with pytest.raises(TypeError, match="Neuron"):
        Recurrent(nn.ReLU(), w)


# ------------------------------------------------------------------ residual and readout


def test_sew_connect_functions_truth_tables():
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])
    s = torch.tensor([0.0, 1.0, 0.0, 1.0])

    def body(_):
        return a

    class Body(nn.Module):
        def forward(self, x):
            return body(x)

    assert Residual(Body(), connect="ADD")(s).tolist() == [0, 1, 1, 2]
    assert Residual(Body(), connect="and")(s).tolist() == [0, 0, 0, 1]
    assert Residual(Body(), connect="IAND")(s).tolist() == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="ADD, AND, IAND"):
        Residual(Body(), connect="or")
    with pytest.raises(ValueError, match="differ"):
        Residual(nn.Linear(4, 2))(s)


def test_spiking_residual_block_composes_with_a_neuron():
    torch.manual_seed(0)
    body = nn.Sequential(TimeDistributed(nn.Conv2d(2, 2, 3, padding=1)), spk.IF())
    block = nn.Sequential(Residual(body, connect="ADD"), spk.IF())
    xs = seq(3, 2, 2, 4, 4)
    want = spk.IF()(body(xs) + xs)
    torch.testing.assert_close(block(xs), want)


def test_li_linear_is_linear_then_leaky_integrator():
    torch.manual_seed(0)
    layer = LILinear(5, 3, tau=4.0, tau_syn=None)
    xs = seq(6, 2, 5)
    v, want = torch.zeros(2, 3), []
    for x in xs:
        v = 0.75 * v + 0.25 * layer.linear(x)
        want.append(v)
    torch.testing.assert_close(layer(xs), torch.stack(want))
