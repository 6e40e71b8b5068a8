"""Spiking (and leaky-integrator) neurons: one file per neuron, each a step function plus module."""

from spikekit.neurons._base import Neuron, Options, Param
from spikekit.neurons._registry import get_neuron, list_neurons, register_neuron
from spikekit.neurons.adex import AdEx, AdExParams, AdExState, adex_step
from spikekit.neurons.alif import ALIF, ALIFParams, ALIFState, alif_step
from spikekit.neurons.alpha_lif import AlphaLIF, AlphaLIFParams, AlphaLIFState, alpha_lif_step
from spikekit.neurons.cuba_lif import CubaLIF, CubaLIFParams, CubaLIFState, cuba_lif_step
from spikekit.neurons.eif import EIF, EIFParams, EIFState, eif_step
from spikekit.neurons.if_ import IF, IFParams, IFState, if_step
from spikekit.neurons.izhikevich import Izhikevich, IzhikevichParams, IzhikevichState, izhikevich_step
from spikekit.neurons.li import LI, LIParams, LIState, li_step
from spikekit.neurons.lif import LIF, LIFParams, LIFState, lif_step
from spikekit.neurons.qif import QIF, QIFParams, QIFState, qif_step
from spikekit.neurons.rf import RF, RFParams, RFState, rf_step

for _cls in (IF, LIF, CubaLIF, ALIF, AlphaLIF, LI, QIF, EIF, Izhikevich, AdEx, RF):
    register_neuron(_cls)

__all__ = [
    "Neuron",
    "Options",
    "Param",
    "get_neuron",
    "list_neurons",
    "register_neuron",
    "IF",
    "IFParams",
    "IFState",
    "if_step",
    "LIF",
    "LIFParams",
    "LIFState",
    "lif_step",
    "CubaLIF",
    "CubaLIFParams",
    "CubaLIFState",
    "cuba_lif_step",
    "ALIF",
    "ALIFParams",
    "ALIFState",
    "alif_step",
    "AlphaLIF",
    "AlphaLIFParams",
    "AlphaLIFState",
    "alpha_lif_step",
    "LI",
    "LIParams",
    "LIState",
    "li_step",
    "QIF",
    "QIFParams",
    "QIFState",
    "qif_step",
    "EIF",
    "EIFParams",
    "EIFState",
    "eif_step",
    "Izhikevich",
    "IzhikevichParams",
    "IzhikevichState",
    "izhikevich_step",
    "AdEx",
    "AdExParams",
    "AdExState",
    "adex_step",
    "RF",
    "RFParams",
    "RFState",
    "rf_step",
]
