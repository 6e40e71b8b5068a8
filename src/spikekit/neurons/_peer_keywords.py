"""Peers' constructor keywords and what to write instead: one table, read by every neuron.

A user moving from snntorch, spikingjelly, norse, eve-mli or snetx types the keyword they
know (``threshold=``, ``spike_grad=``, ``init_hidden=True``...). The native constructors do
not accept those names (peers' names live only under :mod:`spikekit.compat`), but the error
should say what the native equivalent is instead of only listing the accepted keywords.
:meth:`spikekit.neurons.Neuron.__init__` looks every unknown keyword (and a few peer-only
*values* of native keywords, like spikingjelly's ``v_reset=None``) up here.

This module imports only the leaf :mod:`spikekit.neurons._math` (for the reset names).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from spikekit.neurons._math import RESETS

__all__ = ["PEER_KEYWORDS", "PeerHint", "peer_value_hint", "unknown_keywords_message"]


class PeerHint(NamedTuple):
    """What to write instead of a peer's keyword.

    Attributes:
        peer: whose name it is (``"snntorch"``, ``"spikingjelly"``, ...).
        use: the native replacement, shown as is.
        needs: native keywords ``use`` relies on; the hint is shown only for a neuron that
            accepts all of them (``beta_syn`` means nothing to ``LIF``).
    """

    peer: str
    use: str
    needs: tuple[str, ...] = ()


_RECURRENT = "spk.layers.Recurrent(neuron, nn.Linear(H, H, bias=False))"
_NO_EQUIVALENT = "has no equivalent here"

# keyword -> hints, in the order a user most likely means them. One keyword can be two
# peers' names for different things (``alpha``: snntorch's synaptic decay, norse's
# surrogate sharpness), so each keyword holds a tuple of hints.
PEER_KEYWORDS: dict[str, tuple[PeerHint, ...]] = {
    # --- snntorch (Leaky, Synaptic, Alpha, Lapicque, RLeaky)
    "threshold": (PeerHint("snntorch", "v_th=...", ("v_th",)),),
    "spike_grad": (
        PeerHint(
            "snntorch", "surrogate=... (a spikekit.surrogate object or its name, e.g. 'atan')", ("surrogate",)
        ),
    ),
    "learn_beta": (PeerHint("snntorch", "learn=('beta',)", ("beta",)),),
    "learn_threshold": (PeerHint("snntorch", "learn=('v_th',)", ("v_th",)),),
    "learn_alpha": (PeerHint("snntorch", "learn=('beta_syn',)", ("beta_syn",)),),
    "alpha": (
        PeerHint("snntorch", "beta_syn=... (synaptic current decay)", ("beta_syn",)),
        PeerHint(
            "norse",
            "surrogate=spk.surrogate.get('superspike', alpha=...) (surrogate sharpness)",
            ("surrogate",),
        ),
    ),
    "init_hidden": (
        PeerHint(
            "snntorch",
            "`with spk.stepwise(net): ...` (state is carried by a scoped wrapper; drop init_hidden)",
        ),
    ),
    "reset_mechanism": (
        PeerHint(
            "snntorch",
            "reset=... ('subtract' is reset='soft', 'zero' is reset='hard' with v_reset=0)",
            ("reset",),
        ),
    ),
    "output": (
        PeerHint("snntorch", "neuron.scan(xs) (returns (spikes, state); neuron(xs) returns spikes only)"),
    ),
    "surrogate_disable": (PeerHint("snntorch", "nothing: run inference under torch.no_grad()"),),
    "inhibition": (PeerHint("snntorch", _NO_EQUIVALENT),),
    "state_quant": (PeerHint("snntorch", _NO_EQUIVALENT),),
    "graded_spikes_factor": (
        PeerHint("snntorch", "binary=False for graded output, or scale the output in the next layer"),
    ),
    "learn_graded_spikes_factor": (PeerHint("snntorch", _NO_EQUIVALENT),),
    "time_step": (PeerHint("snntorch", "dt=...", ("dt",)),),
    "R": (PeerHint("snntorch", "tau=R*C (Lapicque)", ("tau",)),),
    "C": (PeerHint("snntorch", "tau=R*C (Lapicque)", ("tau",)),),
    "all_to_all": (PeerHint("snntorch", _RECURRENT),),
    "linear_features": (PeerHint("snntorch", _RECURRENT),),
    "learn_recurrent": (PeerHint("snntorch", _RECURRENT),),
    # --- spikingjelly (IFNode, LIFNode, ParametricLIFNode, ...)
    "v_threshold": (PeerHint("spikingjelly", "v_th=...", ("v_th",)),),
    "surrogate_function": (
        PeerHint("spikingjelly", "surrogate=... (a spikekit.surrogate object or its name)", ("surrogate",)),
    ),
    "init_tau": (PeerHint("spikingjelly", "tau=..., learn=('tau',)", ("tau",)),),
    "step_mode": (
        PeerHint(
            "spikingjelly",
            "nothing for 'm' (neurons take [T, B, ...]); for 's' use `with spk.stepwise(net): ...`",
        ),
    ),
    "backend": (PeerHint("spikingjelly", "nothing: the fused CPU/GPU kernel is chosen automatically"),),
    "store_v_seq": (PeerHint("spikingjelly", "`with spk.record(net) as rec: ...` then rec[name].v"),),
    "v_rest": (PeerHint("spikingjelly", "v_leak=...", ("v_leak",)),),
    # --- norse (LIFParameters, LIFBoxParameters, LSNNParameters, AdEx)
    "tau_mem_inv": (PeerHint("norse", "tau=1/tau_mem_inv", ("tau",)),),
    "tau_syn_inv": (PeerHint("norse", "tau_syn=1/tau_syn_inv", ("tau_syn",)),),
    "tau_adapt_inv": (PeerHint("norse", "tau_adapt=1/tau_adapt_inv", ("tau_adapt",)),),
    "tau_ada_inv": (PeerHint("norse", "tau_adapt=1/tau_ada_inv", ("tau_adapt",)),),
    "adaptation_current": (PeerHint("norse", "a=...", ("a",)),),
    "adaptation_spike": (PeerHint("norse", "b=...", ("b",)),),
    "method": (
        PeerHint("norse", "surrogate=... (method='super' is surrogate='superspike')", ("surrogate",)),
    ),
    "p": (PeerHint("norse", "the parameters as keywords, e.g. LIF(tau=1/p.tau_mem_inv, v_th=p.v_th)"),),
    "record_states": (PeerHint("norse", "`with spk.record(net) as rec: ...`"),),
    "state_fallback": (PeerHint("norse", "neuron.scan(xs, state) (state is passed explicitly)"),),
    # --- eve-mli (IfNode, LifNode)
    "voltage_threshold": (PeerHint("eve-mli", "v_th=...", ("v_th",)),),
    "voltage_reset": (PeerHint("eve-mli", "v_reset=...", ("v_reset",)),),
    "neuron_wise": (PeerHint("eve-mli", "shape=... (or shape='infer')", ("shape",)),),
    "time_independent": (PeerHint("eve-mli", "time_dependent=not time_independent", ("time_dependent",)),),
    "state": (PeerHint("eve-mli", "shape='infer' (parameters are sized by the first input)", ("shape",)),),
    "requires_upgrade": (
        PeerHint("eve-mli", "learn=(...) (the names to learn, e.g. learn=('v_th',))", ("learn",)),
    ),
    "learnable": (PeerHint("eve-mli", "learn=(...) (the names to learn, e.g. learn=('v_th',))", ("learn",)),),
    # --- snetx
    "sg": (PeerHint("snetx", "surrogate=... (a spikekit.surrogate object or its name)", ("surrogate",)),),
    "surrogate_fn": (
        PeerHint("snetx", "surrogate=... (a spikekit.surrogate object or its name)", ("surrogate",)),
    ),
}

# (native keyword, peer-only value) -> hint: values a peer gives a keyword we share.
_PEER_VALUES: dict[tuple[str, Any], PeerHint] = {
    ("v_reset", None): PeerHint(
        "spikingjelly", "reset='soft' (v_reset=None is spikingjelly's soft reset)", ("reset",)
    ),
    ("reset", "subtract"): PeerHint("snntorch", "reset='soft'", ("reset",)),
    ("reset", "zero"): PeerHint("snntorch", "reset='hard' with v_reset=0", ("reset",)),
}


def _hint(who: str, key: str, hints: Iterable[PeerHint], accepted: Iterable[str]) -> str:
    ok = set(accepted)
    peers = "/".join(dict.fromkeys(h.peer for h in hints))
    usable = [h for h in hints if all(n in ok for n in h.needs)]
    if not usable:
        return f"{who} has no argument {key!r} ({peers}'s name) and no equivalent for it"
    if len(usable) == 1 and usable[0].use == _NO_EQUIVALENT:
        return f"{who} has no argument {key!r} ({usable[0].peer}'s name); it {_NO_EQUIVALENT}"
    if len(usable) == 1:
        return f"{who} has no argument {key!r} ({usable[0].peer}'s name); use {usable[0].use}"
    uses = "; ".join(f"{h.peer}'s: use {h.use}" for h in usable)
    return f"{who} has no argument {key!r} ({peers}'s name). {uses}"


def unknown_keywords_message(who: str, unknown: Iterable[str], accepted: Iterable[str]) -> str:
    """The ``TypeError`` message for keywords a neuron does not take.

    Args:
        who: the neuron class name.
        unknown: the keywords it does not take.
        accepted: every keyword it takes.

    Returns:
        One sentence per peer keyword naming our equivalent, then, for keywords no peer
        uses (typos), the list of accepted keywords.
    """
    accepted = list(accepted)
    unknown = sorted(unknown)
    parts = [_hint(who, k, PEER_KEYWORDS[k], accepted) for k in unknown if k in PEER_KEYWORDS]
    rest = [k for k in unknown if k not in PEER_KEYWORDS]
    if rest:
        parts.append(
            f"{who}() got unexpected keyword argument(s) {', '.join(map(repr, rest))}; "
            f"accepted: {', '.join(accepted)}"
        )
    return "\n".join(parts)


def peer_value_hint(who: str, key: str, value: Any, accepted: Iterable[str]) -> str | None:
    """A message for a peer's value of a keyword we share (``v_reset=None``), else ``None``.

    Args:
        who: the neuron class name.
        key: the native keyword.
        value: the value given.
        accepted: every keyword the neuron takes.

    Returns:
        The message, or ``None`` when ``value`` is not a known peer value of ``key``.
    """
    try:
        h = _PEER_VALUES.get((key, value))
    except TypeError:  # unhashable value (a tensor): never a peer's special value
        return None
    if h is None:
        return None
    if not all(n in set(accepted) for n in h.needs):
        return f"{who}: {key}={value!r} is {h.peer}'s setting, which {who} has no equivalent for"
    # Keep the plain check's wording first (reset must be one of ...): it names the native
    # choices, and code matching that message keeps working.
    lead = f"reset must be one of {RESETS}, got {value!r}; " if key == "reset" else ""
    return f"{who}: {lead}{key}={value!r} is {h.peer}'s setting; use {h.use}"
