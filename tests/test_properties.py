"""Property-based tests over shapes and parameters (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikekit as spk

shapes = st.tuples(
    st.integers(1, 5),  # T
    st.integers(1, 3),  # B
    st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),  # features
)
neurons = st.sampled_from(["if", "lif", "cubalif", "alif", "li"])


def _make(name: str, beta: float, v_th: float, reset: str, per_neuron: bool, feat: tuple[int, ...]):
    cls = spk.get_neuron(name)
    kw: dict = {}
    if name != "if":
        kw["beta"] = beta
    if name != "li":
        kw.update(v_th=v_th, reset=reset)
    if per_neuron and feat:
        kw["shape"] = feat
    return cls(**kw)


@settings(max_examples=60, deadline=None)
@given(
    shape=shapes,
    name=neurons,
    beta=st.floats(0.0, 1.0),
    v_th=st.floats(0.05, 3.0),
    reset=st.sampled_from(["hard", "soft", "none"]),
    per_neuron=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_shape_and_parameters(shape, name, beta, v_th, reset, per_neuron, seed):
    T, B, feat = shape
    n = _make(name, beta, v_th, reset, per_neuron, feat)
    xs = torch.randn(T, B, *feat, generator=torch.Generator().manual_seed(seed)) * 2
    out, state = n.scan(xs)
    assert out.shape == xs.shape
    assert all(s.shape == xs.shape[1:] for s in state)
    assert torch.isfinite(out).all()
    if name != "li":
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    # single-step form agrees
    s, steps = None, []
    for x in xs:
        z, s = n.step(x, s)
        steps.append(z)
    torch.testing.assert_close(torch.stack(steps), out)
    # hard reset: the carried membrane after a spike is exactly v_reset
    if name in ("if", "lif") and reset == "hard":
        fired = out[-1].bool()
        assert torch.all(state.v[fired] == 0.0)


@settings(max_examples=30, deadline=None)
@given(beta=st.floats(0.01, 0.99), x=st.floats(-2.0, 2.0), T=st.integers(1, 30))
def test_li_closed_form(beta, x, T):
    """LI with constant input has the geometric-series solution v_T = x (1 - beta^T)."""
    li = spk.LI(beta=beta, beta_syn=0.0)
    v = li(torch.full((T, 1, 1), x, dtype=torch.float64))
    expected = x * (1 - beta**T)
    # parameters are stored in float32 (as nn.Linear weights are), hence the tolerance
    torch.testing.assert_close(v[-1].item(), expected, rtol=1e-6, atol=1e-6)
