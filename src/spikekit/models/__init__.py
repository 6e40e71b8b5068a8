"""Model zoo: the reference tutorials' networks and standard spiking architectures, by name.

>>> from spikekit.models import create_model, list_models
>>> "digits_convnet" in list_models()
True
"""

from spikekit.models import digits, resnet, tutorials, vgg
from spikekit.models._common import SpikingModel, make_neuron
from spikekit.models._registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = [
    "ModelInfo",
    "SpikingModel",
    "create_model",
    "digits",
    "resnet",
    "tutorials",
    "vgg",
    "list_models",
    "make_neuron",
    "model_info",
    "register_model",
]
