"""The test database of neurons: every registered neuron with the option variants to test.

Adding a neuron to spikekit means adding one ``NeuronCase`` list here; every contract test
in ``test_neuron_contract.py`` then covers it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import spikekit as spk
from spikekit.neurons import list_neurons


@dataclass(frozen=True)
class NeuronCase:
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    learnable: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        return f"{self.cls.__name__}({opts})"

    def make(self, **extra: Any) -> spk.Neuron:
        return self.cls(**{**self.kwargs, **extra})


def _spiking(
    cls: type, learnable: tuple[str, ...], delay: bool, decay_input: bool, **base: Any
) -> list[NeuronCase]:
    cases = []
    for reset, detach in itertools.product(("hard", "soft", "none"), (False, True)):
        cases.append(NeuronCase(cls, {**base, "reset": reset, "detach_reset": detach}, learnable))
    if delay:
        for reset in ("hard", "soft"):
            cases.append(
                NeuronCase(
                    cls, {**base, "reset": reset, "reset_delay": True, "detach_reset": True}, learnable
                )
            )
    if decay_input:
        cases.append(NeuronCase(cls, {**base, "decay_input": False, "reset": "soft"}, learnable))
    cases.append(NeuronCase(cls, {**base, "binary": False}, learnable))
    cases.append(NeuronCase(cls, {**base, "time_dependent": False}, learnable))
    cases.append(NeuronCase(cls, {**base, "surrogate": "fast_sigmoid"}, learnable))
    cases.append(
        NeuronCase(cls, {**base, "surrogate": spk.surrogate.PiecewiseQuadratic(alpha=1.0)}, learnable)
    )
    return cases


def _recurrent_learnable(cases: list[NeuronCase], only_next_step: tuple[str, ...]) -> list[NeuronCase]:
    """With ``time_dependent=False`` the state is cut between steps, so parameters that act only
    through the next step's state (a recovery or adaptation variable, the initial state) get no
    gradient: leave them out of that case's ``learnable``."""
    return [
        dataclasses.replace(c, learnable=tuple(n for n in c.learnable if n not in only_next_step))
        if c.kwargs.get("time_dependent") is False
        else c
        for c in cases
    ]


CASES: list[NeuronCase] = [
    *_spiking(spk.IF, ("v_th", "v_reset"), delay=True, decay_input=False, v_th=0.7),
    *_spiking(spk.LIF, ("tau", "v_th", "v_reset", "v_leak"), delay=True, decay_input=True, tau=3.0, v_th=0.6),
    *_spiking(
        spk.CubaLIF,
        ("tau", "tau_syn", "v_th", "v_reset", "v_leak"),
        delay=True,
        decay_input=True,
        tau=4.0,
        tau_syn=2.0,
        v_th=0.3,
    ),
    *_spiking(
        spk.ALIF,
        ("tau", "tau_adapt", "adapt", "v_th", "v_reset", "v_leak"),
        delay=False,
        decay_input=True,
        tau=3.0,
        tau_adapt=5.0,
        adapt=0.5,
        v_th=0.5,
    ),
    # The reset is always one step late (snntorch's Alpha), so there is no reset_delay variant.
    *_spiking(
        spk.AlphaLIF,
        ("tau_exc", "tau_inh", "v_th"),
        delay=False,
        decay_input=False,
        tau_exc=4.0,
        tau_inh=2.0,
        v_th=0.3,
    ),
    NeuronCase(spk.LI, {"tau": 3.0, "tau_syn": 2.0}, ("tau", "tau_syn", "v_leak")),
    NeuronCase(spk.LI, {"tau": 3.0, "tau_syn": None, "decay_input": False}, ("tau", "v_leak")),
    # The nonlinear neurons run away without a reset once the membrane passes the unstable fixed
    # point: these parameters keep "none" (and the soft reset with unscaled input) bounded for
    # the test inputs, while they still spike in 6 steps.
    *_spiking(
        spk.QIF,
        ("tau", "a0", "v_c", "v_th", "v_reset", "v_rest"),
        delay=True,
        decay_input=True,
        tau=3.0,
        a0=0.2,
        v_c=6.0,
        v_th=0.5,
        v_reset=0.0,
    ),
    *_spiking(
        spk.EIF,
        ("tau", "delta_T", "theta_rh", "v_th", "v_reset", "v_leak"),
        delay=True,
        decay_input=True,
        tau=3.0,
        delta_T=1.0,
        theta_rh=5.0,
        v_th=0.5,
        v_reset=0.0,
    ),
    *_recurrent_learnable(
        _spiking(
            spk.Izhikevich,
            ("tau", "k2", "k1", "k0", "a", "b", "d", "semi_implicit", "v_th", "v_reset", "v_rest"),
            delay=True,
            decay_input=True,
            tau=3.0,
            k2=0.25,
            k1=-1.0,
            k0=0.0,
            a=0.5,
            b=0.2,
            d=0.1,
            semi_implicit=0.5,
            v_th=0.5,
            v_reset=0.0,
            v_rest=0.0,
        ),
        ("a", "b", "d", "semi_implicit", "v_rest"),
    ),
    *_recurrent_learnable(
        _spiking(
            spk.AdEx,
            ("tau", "tau_syn", "tau_adapt", "a", "b", "delta_T", "theta_rh", "v_th", "v_reset", "v_leak"),
            delay=True,
            decay_input=True,
            tau=3.0,
            tau_syn=2.0,
            tau_adapt=4.0,
            a=0.5,
            b=0.1,
            delta_T=1.0,
            theta_rh=5.0,
            v_th=0.5,
        ),
        ("a", "b"),
    ),
    *_spiking(
        spk.RF,
        ("tau", "omega", "v_th", "v_reset"),
        delay=True,
        decay_input=True,
        tau=4.0,
        omega=0.4,
        v_th=0.3,
    ),
]

# Every registered neuron must have cases (a new neuron cannot silently skip the contract).
assert {c.cls.__name__.lower() for c in CASES} == set(list_neurons()), "add the new neuron to CASES"
