"""spikekit: spiking neural networks on PyTorch with surrogate gradients.

The public API is re-exported here explicitly. ``import spikekit`` needs only torch and
numpy; plotting, datasets, NIR and fused-kernel JITs load lazily where they are used.
"""

from typing import Any

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
    check,
    detach_state,
    keep_state,
    neurons_of,
    non_spike,
    nonfinite,
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
    AlphaLIF,
    CubaLIF,
    Izhikevich,
    Neuron,
    Options,
    get_neuron,
    list_neurons,
)

__version__ = "0.1.0"

# Submodules that pull in optional or heavy dependencies (matplotlib, torchvision, tonic, the
# peer libraries, the trainer) load on first attribute access (PEP 562), so ``spikekit.viz``
# works after ``import spikekit`` while ``import spikekit`` itself stays torch + numpy only.
_LAZY_SUBMODULES = frozenset({"bench", "compat", "convert", "data", "export", "train", "viz"})

# Functions defined in a lazy submodule, by the module that defines them (loaded the same way).
_LAZY_FUNCTIONS = {
    "load_model": "spikekit.train.load",
    "energy": "spikekit.synops",
    "to_nir": "spikekit.export.nir",
    "from_nir": "spikekit.export.nir",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES or name in _LAZY_FUNCTIONS:
        import importlib

        if name in _LAZY_FUNCTIONS:
            value = getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
        else:
            value = importlib.import_module(f"spikekit.{name}")
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'spikekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES | set(_LAZY_FUNCTIONS))


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
    "AlphaLIF",
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
    "check",
    "detach_state",
    "reset",
    "record",
    "Recording",
    "spike",
    "non_spike",
    "set_surrogate",
    "neurons_of",
    "keep_state",
    "nonfinite",
]  # the lazy submodules stay out of __all__ so ``from spikekit import *`` stays light too
