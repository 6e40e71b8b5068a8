"""spikekit: spiking neural networks on PyTorch with surrogate gradients.

The public API is re-exported here explicitly. ``import spikekit`` needs only torch and
numpy; plotting, datasets, NIR and fused-kernel JITs load lazily where they are used.
"""

from spikekit import (
    decoding,
    encoding,
    functional,
    kernels,
    layers,
    losses,
    metrics,
    models,
    neurons,
    regularisers,
    surrogate,
)
from spikekit.models import create_model, list_models
from spikekit.modes import (
    Recording,
    detach_state,
    neurons_of,
    non_spike,
    record,
    reset,
    set_surrogate,
    spike,
    stepwise,
)
from spikekit.neurons import (
    ALIF,
    EIF,
    IF,
    LI,
    LIF,
    QIF,
    RF,
    AdEx,
    CubaLIF,
    Izhikevich,
    Neuron,
    Options,
    get_neuron,
    list_neurons,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "functional",
    "kernels",
    "encoding",
    "decoding",
    "losses",
    "regularisers",
    "metrics",
    "layers",
    "models",
    "create_model",
    "list_models",
    "neurons",
    "surrogate",
    "IF",
    "LIF",
    "CubaLIF",
    "ALIF",
    "LI",
    "QIF",
    "EIF",
    "Izhikevich",
    "AdEx",
    "RF",
    "Neuron",
    "Options",
    "get_neuron",
    "list_neurons",
    "stepwise",
    "detach_state",
    "reset",
    "record",
    "Recording",
    "spike",
    "non_spike",
    "set_surrogate",
    "neurons_of",
]
